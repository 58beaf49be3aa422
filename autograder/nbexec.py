"""How ``nbgrader autograde`` executes a student's notebook here: nbgrader's own executor, except
that a kernel that ends (``os._exit``, a crash in native code, a kill at a resource limit) ends only
that notebook.

nbgrader stops the whole autograde when a kernel dies, and every notebook of the submission scores
nothing. Here the cell that was running gets an error output naming what happened, every code cell
after it gets one saying it did not run (so a test cell after it scores 0, never full marks), and the
cells that ran before keep their scores. The grader's row names the cell (:func:`kernel_deaths`).

Used through the grading course's ``nbgrader_config.py`` (:func:`autograde_preprocessors`); it runs
in nbgrader's process, inside the sandbox, so it is one of the sandbox's sourceless modules.
"""

from __future__ import annotations

from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

DIED = "KernelDied"
NOT_RUN = "NotRun"


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class ResilientExecute(Execute):
    """nbgrader's Execute preprocessor; a dead kernel marks the rest of the notebook as not run."""

    def preprocess(self, nb, resources=None, km=None):
        self._died_in = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._died_in is not None:
            if cell.cell_type == "code":
                cell.outputs = [_error(NOT_RUN, f"not run: the kernel ended in cell {self._died_in + 1}")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._died_in = index
            cell.outputs.append(_error(DIED, "the kernel ended while this cell ran (os._exit, a crash in native "
                                             "code, or a resource limit); the cells after it did not run"))
            return cell, self.resources


def autograde_preprocessors() -> list:
    """nbgrader's autograde preprocessors with its Execute replaced by :class:`ResilientExecute`."""
    from nbgrader.converters import Autograde
    default = Autograde.class_traits()["autograde_preprocessors"].default()
    return [ResilientExecute if p is Execute else p for p in default]


def kernel_deaths(cells) -> list[int]:
    """0-based indices of the cells of an executed notebook where its kernel ended."""
    return [i for i, cell in enumerate(cells) if any(o.get("output_type") == "error" and o.get("ename") == DIED
                                                     for o in cell.get("outputs", []))]
