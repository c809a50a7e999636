"""The scenario ``sibsim new`` writes: a small, complete deal with every section commented.

It is an employment programme (training, job search, work) paid for by a municipality out of its
savings on welfare benefits, with a comparison group: the shape of most Dutch deals.  Every number
is a placeholder to replace, listed as such in ``[meta].assumptions``; the file validates and runs
as it is, so it can be changed one section at a time (``sibsim validate`` after each change).
The full format is in docs/scenario.md; the shipped scenarios show other journeys and stacks.
"""

from __future__ import annotations

import json

#: First line of a template written by ``sibsim new``.
HEADER = "# Scenario template written by `sibsim new`: replace every number marked ASSUMPTION."

TEMPLATE = HEADER + '''
# Format: docs/scenario.md. Check after each change: sibsim validate THIS_FILE
# Run it: sibsim run THIS_FILE --out out/my_deal   (or sibsim report THIS_FILE --out memo.html)

[meta]
title = {title}
description = """What the programme does, for whom, and who pays for which outcomes."""
currency = "EUR"                 # every amount in the file is in this currency
start = "2026-01"                # month 0 of the contract (YYYY-MM): dates in the memo
sources = [
  "Where each published number comes from (a report, a council decision, a web page)",
]
assumptions = [
  "ASSUMPTION: every number below that no source gives; say why each is plausible",
]

[term]
term_months = 36                 # ASSUMPTION: the contract term
tail_months = 12                 # savings followed after the term (not paid for)

# The investors who pre-finance the programme: capital committed, and a cap on their return.
[[investors]]
name = "Investor A"
commitment = 300_000             # ASSUMPTION
return_cap = 0.08                # at most 8 % a year

[[investors]]
name = "Investor B"
commitment = 200_000             # ASSUMPTION
return_cap = 0.08

# What the provider is paid to deliver, drawn from the investors' capital.
[provider]
name = "The provider"
budget = [ {{ from_month = 0, to_month = 23, per_month = 20_000 }} ]   # ASSUMPTION: 480,000 over two years

[[fees]]
name = "Structuring and legal fees"
paid_by = "investors"
schedule = [ {{ month = 0, amount = 20_000 }} ]                        # 480,000 + 20,000 = 500,000

# The outcome payer: when it measures, how long after it pays, what it pays for, and its cap.
[payer]
name = "Gemeente (municipality)"
measurement_months = [12, 24, 36]
payment_lag_months = 3
payment_cap = 700_000            # ASSUMPTION: the most it pays in all

[payer.rate_card]
job_sustained = 24_000           # ASSUMPTION: per net participant in work for 6 months in a row

# What the payer spends per participant-month, and so what it saves when they are in work.
[[costs]]
name = "welfare benefit"
states = ["training", "job_search", "relapsed"]
annual_indexation = 0.02
bands = [ {{ group = "all", amount = 1_000, share = 1.0 }} ]   # ASSUMPTION: per month on benefits

# Participants enter in groups (cohorts): the month they start and how many.
[[cohorts]]
intake_month = 0
size = 50
[[cohorts]]
intake_month = 6
size = 50

# The journey: the states a participant can be in, and the monthly probabilities of moving on.
# Each probability has a prior (mean and sd): how unsure we are of it before the programme starts.
[journey]
start = "training"

[journey.parameters]
finish_training = {{ mean = 0.15, sd = 0.04 }}   # ASSUMPTION: per month in training
job_start = {{ mean = 0.06, sd = 0.015 }}        # ASSUMPTION: per month in job search
relapse = {{ mean = 0.03, sd = 0.01 }}           # ASSUMPTION: per month in work

[[journey.states]]
name = "training"
time_limit = 9                   # at most 9 months, then job search
after_limit = "job_search"
exits = [ {{ to = "job_search", probability = "finish_training" }} ]

[[journey.states]]
name = "job_search"
timing = "start"                 # a job can start in the first month of the search
exits = [ {{ to = "job", probability = "job_start" }} ]

[[journey.states]]
name = "job"
exits = [ {{ to = "relapsed", probability = "relapse" }} ]

[[journey.states]]
name = "relapsed"                # the month a job ends is spent on benefits
time_limit = 1
after_limit = "job_search"

# What the contract counts: participants in work for 6 months in a row.
[outcomes.job_sustained]
kind = "milestone"
states = ["job"]
months = 6
label = "job held 6 months"

# Without the programme: a comparison group of the same size, straight to job search.
[comparison]
method = "comparison_group"
size_ratio = 1.0
start = "job_search"
shared = ["relapse"]             # one draw for both groups: the same labour market once in work
[comparison.parameters]
job_start = {{ mean = 0.02, sd = 0.006 }}        # ASSUMPTION: per month without the programme

[analysis]
investor_discount_rate = 0.05
public_discount_rate = 0.03
primary_outcome = "job_sustained"
'''


def scenario_template(title: str = "My Social Impact Bond") -> str:
    """The template's text with ``title`` written as a TOML string (JSON's escapes are TOML's; DEL,
    which JSON leaves as it is and TOML refuses, escaped too, so that the loader judges the title)."""
    return TEMPLATE.format(title=json.dumps(title, ensure_ascii=False).replace("\x7f", "\\u007f"))
