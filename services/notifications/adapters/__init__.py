"""SQL tables, the webhook HTTP client and the SMTP client."""
