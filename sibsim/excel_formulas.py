"""The workbook's formula sheets: the settlement computed by Excel from the ``Inputs`` sheet.

A finance officer changes a price, the cap or a count on ``Inputs`` and sees the payments, the
investors' distributions and the payer's net position change.  The formulas are the ones
:func:`sibsim.cashflows.settle` applies (and ``sibsim settle`` prints for observed counts):

* ``Settlement``, one row per measurement: the net count of each outcome (treated less
  counterfactual, both from ``Inputs``), the amount earned (the rate card on the positive net
  counts), its high-water mark (payments are never clawed back) and what falls due, paid the
  payment lag later;
* ``Settlement by month``, one row per month: what falls due, within the payment cap (counted over
  the whole contract), the capital called, the investors' claim up to their return cap (capital
  drawn growing at the cap, monthly, less what they received), the cash on offer (the month's
  payment plus what was withheld), what is distributed (up to the claim), what stays withheld, the
  payer's cash paid (what fell due less what it keeps), its fees, its savings and its net
  position; each tranche's share of the calls and distributions (pro rata to commitments).

The sheets express one family of terms, which Colour Kitchen is in: one payer that never
defaults, a rate card (no tiers, cohort trigger or savings share), no review or external stop, no
guarantees or recycling, the default waterfall over equity tranches of one seniority with one
return cap (or none) and capital drawn pro rata to commitments.  For other contracts
:func:`formula_limits` names what is beyond the sheets, and ``Settlement`` says so instead of
computing a settlement that would differ from sibsim's.
"""

from __future__ import annotations

from openpyxl.utils import get_column_letter

from .safetext import formula_like

#: Sheet names.
SETTLEMENT, BY_MONTH = "Settlement", "Settlement by month"
#: ``Inputs`` sections the formulas read (column ``section``).
TERMS, CAPITAL, TREATED, COUNTERFACTUAL = "payment terms", "capital", "count (treated)", "count (counterfactual)"
CALLS, SAVINGS, PAYER_FEES = "capital call (planned)", "savings (expected)", "fees paid by the payer"


def formula_limits(contract) -> list[str]:
    """What in the contract the formula sheets cannot compute (empty: they compute its settlement)."""
    payer = contract.payer
    tranches = contract.investors
    limits = []
    if len(contract.payers) > 1:
        limits.append("several payers")
    if payer.tiers:
        limits.append("tier tables")
    if payer.trigger is not None:
        limits.append("a cohort trigger")
    if payer.savings_share.rate:
        limits.append("a share of savings")
    first = contract.payers[0]  # the one payer's own terms (a single [[payers]] entry included)
    if payer.default_probability or first.default_probability:
        limits.append("a payer that may default")
    if first.paid_to != "investors":
        limits.append("payments to the provider directly")
    if payer.review is not None or contract.external_stop is not None:
        limits.append("early termination (a review or an external stop)")
    if contract.guarantees:
        limits.append("guarantees")
    if contract.recycling:
        limits.append("recycled outcome payments")
    if contract.waterfall_terms is not None:
        limits.append("a waterfall of its own")
    if contract.draw_order.groups:
        limits.append("a draw order")
    if any(f.paid_by == "waterfall" for f in contract.fees):
        limits.append("fees paid from the waterfall")
    if any(t.kind != "equity" for t in tranches):
        limits.append("tranches other than equity (loans, grants, deferred fees)")
    if len({t.seniority for t in tranches}) > 1:
        limits.append("tranches of different seniority")
    if len({t.cap_rate for t in tranches}) > 1:
        limits.append("tranches with different return caps")
    if any(t.available_from_month for t in tranches):
        limits.append("tranches released later")
    if not payer.measurement_months:
        limits.append("no measurement months")
    return limits


def _text(cell, value) -> None:
    """A label from the scenario: text, never a formula (:mod:`sibsim.safetext`)."""
    cell.value = value
    if formula_like(value):
        cell.data_type = "s"
        cell.quotePrefix = True


class InputsIndex:
    """Where the formulas find their inputs on the ``Inputs`` sheet (its column letters)."""

    def __init__(self, columns: list[str], n_rows: int):
        letter = {name: get_column_letter(j) for j, name in enumerate(columns, start=1)}
        self.rows = n_rows + 1  # the header is row 1

        def col(name):
            return f"Inputs!${letter[name]}$2:${letter[name]}${self.rows}"

        self.section, self.item, self.outcome = col("section"), col("item"), col("outcome")
        self.month, self.value = col("month"), col("value")
        self.letter = letter

    def cell(self, row_index: int) -> str:
        """The ``value`` cell of the table's row ``row_index`` (0-based)."""
        return f"Inputs!${self.letter['value']}${row_index + 2}"

    def monthly(self, section: str, month_cell: str) -> str:
        return f'SUMIFS({self.value},{self.section},"{section}",{self.month},{month_cell})'



def write_formula_sheets(book, contract, inputs, money: str, month_format: str, dated_months) -> bool:
    """Add ``Settlement`` and ``Settlement by month`` to ``book``; returns whether they hold formulas.

    ``inputs``: the ``Inputs`` table (:func:`sibsim.excel.inputs_table`), with a ``key`` per row
    (``("price", outcome)``, ``("cap",)``, ``("lag",)``, ``("return_cap",)``,
    ``("commitment", tranche)``, ``("count", section, outcome, month)``) for the cells the formulas
    point at.  ``dated_months``: the date
    of each contract month, or None.
    """
    from openpyxl.styles import Font, PatternFill

    limits = formula_limits(contract)
    sheet = book.create_sheet(SETTLEMENT)
    if limits:
        sheet.append(["Note"])
        sheet.append([f"The formula sheets compute the settlement of contracts without {'; '.join(limits)}; "
                      "this contract has them, so its settlement is left to sibsim settle (and the run's "
                      "values on the other sheets)."])
        sheet.cell(row=1, column=1).font = Font(bold=True)
        sheet.freeze_panes = "A2"
        sheet.column_dimensions["A"].width = 120
        book.create_sheet(BY_MONTH).append(["Note"])
        book[BY_MONTH].append(["See the Settlement sheet."])
        book[BY_MONTH].freeze_panes = "A2"
        return False
    columns = [c for c in inputs.columns if c != "key"]
    at = InputsIndex(columns, len(inputs))
    keys = {k: i for i, k in enumerate(inputs["key"]) if k is not None}
    outcomes = [o for o, _ in contract.payer.rate_card]
    header_fill = PatternFill("solid", fgColor="DCE6F0")

    def header(ws, names):
        for j, name in enumerate(names, start=1):
            cell = ws.cell(row=1, column=j)
            _text(cell, name)
            cell.font = Font(bold=True)
            cell.fill = header_fill
        ws.freeze_panes = "B2"

    # --- per measurement --------------------------------------------------------------------
    months = list(contract.payer.measurement_months)
    titles = {o.name: o.title for o in contract.outcomes}
    names = (["Measurement month", "Payment month"] + [f"Net count: {titles.get(o) or o}" for o in outcomes]
             + ["Earned to date", "High-water mark", "Falls due"])
    header(sheet, names)
    lag = at.cell(keys[("lag",)])
    first_net, hwm_col = 3, 3 + len(outcomes) + 1
    for r, m in enumerate(months, start=2):
        sheet.cell(row=r, column=1, value=m).number_format = "0"
        sheet.cell(row=r, column=2, value=f"=A{r}+{lag}").number_format = "0"
        for k, o in enumerate(outcomes):
            # The counts' own cells: an outcome's name never goes into a formula (no criteria, no quoting).
            cells = [at.cell(keys[key]) if (key := ("count", section, o, m)) in keys else "0"
                     for section in (TREATED, COUNTERFACTUAL)]
            sheet.cell(row=r, column=first_net + k, value=f"={cells[0]}-{cells[1]}").number_format = "#,##0.0"
        earned = "+".join(f"MAX({get_column_letter(first_net + k)}{r},0)*{at.cell(keys[('price', o)])}"
                          for k, o in enumerate(outcomes))
        e, h = get_column_letter(hwm_col - 1), get_column_letter(hwm_col)
        sheet.cell(row=r, column=hwm_col - 1, value=f"={earned}").number_format = money
        previous = f"{h}{r - 1}" if r > 2 else "0"
        sheet.cell(row=r, column=hwm_col, value=f"=MAX({previous},{e}{r},0)").number_format = money
        sheet.cell(row=r, column=hwm_col + 1, value=f"={h}{r}-{previous}").number_format = money
    last_measure = len(months) + 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(names))}{last_measure}"
    due_col = get_column_letter(hwm_col + 1)

    # --- per month --------------------------------------------------------------------------
    ws = book.create_sheet(BY_MONTH)
    tranches = [t.name for t in contract.investors]
    names = (["Month", "Date", "Falls due", "Due within the cap", "Capital called", "Investors' claim",
              "Cash on offer", "Distributed", "Withheld", "Kept by the payer", "Outcome payments",
              "Fees paid by the payer", "Savings", "Net position", "Net position to date"]
             + [f"Called from {n}" for n in tranches] + [f"To {n}" for n in tranches])
    header(ws, names)
    col = {name: get_column_letter(j) for j, name in enumerate(names, start=1)}
    cap_key = keys.get(("cap",))
    rate_key = keys.get(("return_cap",))
    total_commitment = "+".join(at.cell(keys[("commitment", n)]) for n in tranches)
    T = contract.horizon_months
    for r, m in enumerate(range(T), start=2):
        prev = r - 1
        first = r == 2

        def put(name, formula, fmt=money):
            cell = ws.cell(row=r, column=names.index(name) + 1, value=formula)
            cell.number_format = fmt

        put("Month", m, "0")
        put("Date", dated_months[m] if dated_months is not None else None, month_format)
        put("Falls due", f"=SUMIFS({SETTLEMENT}!${due_col}$2:${due_col}${last_measure},"
                         f"{SETTLEMENT}!$B$2:$B${last_measure},A{r})")
        c, d = col["Falls due"], col["Due within the cap"]
        if cap_key is None:
            put("Due within the cap", f"={c}{r}")
        else:
            used = "0" if first else f"SUM({d}$2:{d}{prev})"
            put("Due within the cap", f"=MIN({c}{r},MAX({at.cell(cap_key)}-{used},0))")
        put("Capital called", f"={at.monthly(CALLS, f'A{r}')}")
        claim, offer, dist, held = col["Investors' claim"], col["Cash on offer"], col["Distributed"], col["Withheld"]
        called = col["Capital called"]
        if rate_key is not None:
            growth = f"(1+{at.cell(rate_key)})^(1/12)"
            before = f"{called}{r}" if first else f"({claim}{prev}-{dist}{prev})*{growth}+{called}{r}"
            put("Investors' claim", f"={before}")
        else:
            put("Investors' claim", None)
        put("Cash on offer", f"={d}{r}" if first else f"={d}{r}+{held}{prev}")
        put("Distributed", f"=MIN({offer}{r},MAX({claim}{r},0))" if rate_key is not None else f"={offer}{r}")
        put("Withheld", f"={offer}{r}-{dist}{r}")
        kept = col["Kept by the payer"]
        put("Kept by the payer", f"={held}{r}" if first else f"={held}{r}-{held}{prev}")
        put("Outcome payments", f"={d}{r}-{kept}{r}")
        put("Fees paid by the payer", f"={at.monthly(PAYER_FEES, f'A{r}')}")
        put("Savings", f"={at.monthly(SAVINGS, f'A{r}')}")
        net = col["Net position"]
        put("Net position", f"={col['Savings']}{r}-{col['Outcome payments']}{r}-{col['Fees paid by the payer']}{r}")
        put("Net position to date", f"={net}{r}" if first else f"={col['Net position to date']}{prev}+{net}{r}")
        for n in tranches:
            share = f"{at.cell(keys[('commitment', n)])}/({total_commitment})"
            put(f"Called from {n}", f"={called}{r}*{share}")
            put(f"To {n}", f"={dist}{r}*{share}")
    last = T + 1
    ws.auto_filter.ref = f"A1:{get_column_letter(len(names))}{last}"
    total = last + 1
    _text(ws.cell(row=total, column=1), "Total")
    ws.cell(row=total, column=1).font = Font(bold=True)
    for name in names[2:]:
        if name in ("Investors' claim", "Cash on offer", "Withheld", "Net position to date"):
            continue  # balances, not flows: a sum would mean nothing
        letter = col[name]
        cell = ws.cell(row=total, column=names.index(name) + 1, value=f"=SUM({letter}2:{letter}{last})")
        cell.number_format = money
        cell.font = Font(bold=True)
    for ws_ in (sheet, ws):
        for j in range(1, ws_.max_column + 1):
            ws_.column_dimensions[get_column_letter(j)].width = 16
    return True
