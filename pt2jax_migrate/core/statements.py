"""How a call stands in its statement, as a front end tells core.decide (and core.parallel)."""

EXPR, WITH, WITH_AS, DECORATOR, ASSIGN, VALUE = "expr", "with", "with_as", "decorator", "assign", "value"
