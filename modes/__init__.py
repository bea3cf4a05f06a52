"""Operating modes (article 36): the mode in force per jurisdiction, switching and its log."""
