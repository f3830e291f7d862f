"""Facts shared by api/, worker/, store/, generator/ and cli/, declared once (torch-free: pydantic only)."""
