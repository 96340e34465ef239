"""Feature hashing shared by the data layer, training and serving."""
