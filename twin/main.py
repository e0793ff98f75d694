"""``uvicorn twin.main:app``: the one object built at import time, from the environment."""

from twin.allocator import tune_allocator
from twin.app import create_app
from twin.logconfig import configure_logging
from twin.settings import TwinSettings

tune_allocator()
_settings = TwinSettings()
configure_logging(_settings.log_level, _settings.log_format)
app = create_app(_settings)
