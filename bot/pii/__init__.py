"""Personal data in free text: the rules (rules, numbers, people) and the optional NER model."""
