"""The model lifecycle: resolve -> download -> verify -> ServedModel, and the holder that owns it.

Light on import (no MLflow, pandas or sklearn until the first load): the app imports this.
"""

from flightdelay.serving.runtime.holder import ModelHolder, wait_ready
from flightdelay.serving.runtime.served import ModelUnavailable, ServedModel

__all__ = ["ModelHolder", "ModelUnavailable", "ServedModel", "wait_ready"]
