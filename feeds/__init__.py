"""Feed adapters: each turns one kind of outside source into Notices or validated STIX."""
