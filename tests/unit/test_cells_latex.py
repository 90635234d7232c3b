"""Every registered model's equations as LaTeX for the dashboard (`st.latex`, i.e. KaTeX).

Parametrised over `cells.names()`: a newly registered model is checked without editing this file.
The checks are structural (braces, environments, hyperparameter symbols); rendering with KaTeX
itself needs node and is not a test dependency.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from seqarena import cells

NAMES = cells.names()

#: The LaTeX symbol of each model hyperparameter of kind `float` that appears in the equations.
SYMBOLS = {"dt": r"\Delta t", "gamma": r"\gamma", "epsilon": r"\epsilon", "alpha": r"\alpha", "beta": r"\beta",
           "dt_min": r"\Delta t_{\min}", "dt_max": r"\Delta t_{\max}", "r_min": r"r_{\min}", "r_max": r"r_{\max}",
           "theta_max": r"\theta_{\max}", "max_phase": r"\theta_{\max}"}

#: Float model hyperparameters that are not part of the update equations.
NOT_IN_EQUATIONS = {"dropout", "dt_upper"}  # dt_upper: UnICORNN's Δt of the layers above the first (IMDB)

#: Commands KaTeX does not support (or that need extra packages).
UNSUPPORTED = (r"\bm{", r"\mathbbm", r"\eqref", r"\label")


def braces_balanced(line: str) -> bool:
    """Whether the unescaped `{` and `}` of `line` pair up (`\\{` and `\\}` are literal braces)."""
    depth = 0
    for token in re.findall(r"\\.|[{}]", line):
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def environments_balanced(line: str) -> bool:
    """Whether every `\\begin{env}` of `line` is closed by a matching `\\end{env}`, properly nested."""
    stack: list[str] = []
    for kind, env in re.findall(r"\\(begin|end)\{([^}]*)\}", line):
        if kind == "begin":
            stack.append(env)
        elif not stack or stack.pop() != env:
            return False
    return not stack


def test_helpers_catch_unbalanced_lines() -> None:
    assert braces_balanced(r"\left\{ x_{n} \right.")
    assert not braces_balanced(r"x_{n")
    assert not braces_balanced(r"x}_{n{")
    assert environments_balanced(r"\begin{aligned} \begin{cases} a \end{cases} \end{aligned}")
    assert not environments_balanced(r"\begin{aligned} a")
    assert not environments_balanced(r"\begin{aligned} \begin{cases} a \end{aligned} \end{cases}")


@pytest.mark.parametrize("name", NAMES)
def test_equations_are_display_blocks(name: str) -> None:
    lines = cells.equations(name)
    assert isinstance(lines, tuple) and lines
    for line in lines:
        assert isinstance(line, str) and line.strip()
        assert "$" not in line, "st.latex takes the body without $ or $$ delimiters"
        assert braces_balanced(line), line
        assert environments_balanced(line), line
        assert not any(command in line for command in UNSUPPORTED), line


@pytest.mark.parametrize("name", NAMES)
def test_equations_use_the_hyperparameter_symbols(name: str) -> None:
    text = " ".join(cells.equations(name))
    floats = [hp.name for hp in cells.space(name) if hp.kind == "float" and hp.role == "model"]
    unknown = [hp for hp in floats if hp not in SYMBOLS and hp not in NOT_IN_EQUATIONS]
    assert not unknown, f"give {unknown} a LaTeX symbol in SYMBOLS or list it in NOT_IN_EQUATIONS"
    for hp in floats:
        if hp in SYMBOLS:
            assert SYMBOLS[hp] in text, f"{name}: {hp} should appear as {SYMBOLS[hp]}"


@pytest.mark.parametrize("name", NAMES)
def test_model_class_carries_its_equations_and_paper(name: str) -> None:
    cls = cells.model_class(name)
    assert cls.equations == cells.equations(name)
    assert cls.citation == cells.paper(name)


@pytest.mark.parametrize("name", NAMES)
def test_paper_is_one_line_with_a_year(name: str) -> None:
    citation = cells.paper(name)
    assert "\n" not in citation
    assert re.search(r"\((19|20)\d\d\)", citation), citation


@pytest.mark.parametrize("lookup", [cells.equations, cells.paper])
def test_unknown_model_names_the_allowed_ones(lookup: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match="nosuchmodel") as error:
        lookup("nosuchmodel")
    assert all(name in str(error.value) for name in NAMES)
