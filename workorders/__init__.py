"""Work orders (article 39): intake, the status machine and time limits."""
