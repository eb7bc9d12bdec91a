"""The model zoo: MODNet, U^2-Net, U^2-NetP and the MobileNetV2-UNet trimap net, built by name from JSON configs."""
from .base import ModelConfig, ZooModel, deploy_module
from .channels import apply_channels, channel_record
from .registry import (ModelConfigError, build_from_config, config_from_dict, create_model, get_config_class,
                       list_models, model_task, register_model, sync_channels)

__all__ = ["ModelConfig", "ModelConfigError", "ZooModel", "apply_channels", "build_from_config", "channel_record",
           "config_from_dict", "create_model", "deploy_module", "get_config_class", "list_models", "model_task",
           "register_model", "sync_channels"]
