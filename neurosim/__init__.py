"""neurosim: spiking cortical circuits trained by local plasticity, in Brian2 (DESIGN.md).

The engine lives here; circuits, protocols, models and analysis are the packages beside it.
"""

import warnings

# Brian2 2.8 imports setuptools' MSVC helpers on every platform, which warns on each start-up;
# keep the command line's stderr for messages that concern the user.
warnings.filterwarnings("ignore", message="_get_vc_env is private", category=UserWarning)

__version__ = "0.1.0"
