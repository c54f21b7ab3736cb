"""What people read: the model report, pictures, report objects, the map, one HTML helper."""
