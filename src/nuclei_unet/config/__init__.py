"""params.yaml: the schema of its sections and how they are read and checked."""
