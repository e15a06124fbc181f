"""XaXb: mqantserver's XaXb game (filled in by its own commit)."""
