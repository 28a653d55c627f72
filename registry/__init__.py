"""The project registry: projects, categories, GitHub health, landscape data, public pages."""
