"""Templates shipped with metacrm: each folder holds a template.yaml and its object files."""
