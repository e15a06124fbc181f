"""The REST API under ``/api/``: accounts for people and API clients (register, log in, log
out, who am I), with its OpenAPI schema and Swagger UI."""
