"""The command center: Dash pages, the push (SSE) route and the media routes."""
