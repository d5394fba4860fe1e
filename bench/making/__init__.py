"""Making the suite's own datasets: episode collection (``generate``) and the recipes of each
alias with ``make_alias`` (``makers``). Above evaluation in the layers: a recipe measures its
policies' returns."""
