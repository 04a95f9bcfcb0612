"""``python -m fusioncast.validation``: print the README's table of the validation rules."""

from fusioncast.validation.rules import readme_table

print(readme_table())
