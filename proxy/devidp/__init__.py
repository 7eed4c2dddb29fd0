"""The bundled development IdP (never in production)."""

from proxy.devidp.app import DevIdpConfig, DevIdpRefused, create_devidp_app

__all__ = ["DevIdpConfig", "DevIdpRefused", "create_devidp_app"]
