"""The VK community adapter (vk_api): Bots Long Poll or Callback API in, messages.send out."""

from adapters.vk.adapter import VkAdapter

__all__ = ["VkAdapter"]
