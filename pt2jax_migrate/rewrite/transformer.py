"""The transformer: one libcst pass, composed of one mixin per concern.

libcst dispatches visit_X / leave_X by name, so each hook is defined in exactly one mixin
(tests/test_rewrite_structure.py checks it); where two concerns meet at one hook, the owner
calls named helpers of the other.

Module        hooks it owns                                    state it keeps (set up below)
todos         visit_While/If/Try, leave_For/While/If/Try;      findings, todo_stack, todo_seen,
              changed(), todo(), skip_unsafe(), _pos()         statement_pos
scopes        visit_FunctionDef, leave_FunctionDef, the         scopes (a _Scope per function, class
              comprehensions, Global, Nonlocal, AssignTarget,  body, comprehension; [0] the module)
              AnnAssign, AugAssign, For, CompFor, AsName,
              Param; qualname(), shadowed(), _fscope()
references    visit_Import/ImportFrom/Call/Decorator/          handled_refs, call_stack,
              Attribute/Arg, leave_Name, leave_Decorator;      called_attributes, isinstance_types,
              _reference()                                     statement_level_calls (with statements)
statements    visit/leave_SimpleStatementLine, visit/leave_With  optimizers, optimizer_vars,
                                                               optimizer_calls, scheduler_vars, loss_vars
calls         leave_Call, leave_Arg/Assign/AugAssign/Return/   wrapped, helpers, rngs_classes
              Element/UnaryOperation; _expr(), _ctx(), _args()
methods       leave_Attribute (self.training too);              not_tensors
              _method_call() (from leave_Call)
classes       visit_ClassDef, leave_ClassDef; _convert_method()  class_stack, converted_classes
              (from leave_FunctionDef), _set_train_flag(),
              _is_super_init()
trainsteps    leave_IndentedBlock, leave_Module;               module_names, used_names, step_lines,
              _insert_pending() (from leave_FunctionDef)       kept_optimizers, clips
imports       (functions) import_aliases, finish_imports       aliases (from the engine)
inits         _init_call() (from leave_Call), _apply_call()     init_facts (pt2jax_migrate.inits)
              (from _method_call), init functions take rngs

skipping      _untouched(): a statement line nothing acts on    skip_index, skipped
dispatch      on_visit/on_leave (+ per-field): libcst's name lookup cached per node type, untouched lines skipped

Free helpers live in cst_util (libcst shapes) and lifting (train-step pieces); the entry points
(rewrite_source, parse, the residue check) in engine.
"""

from __future__ import annotations

import ast

import libcst as cst

from .. import trainstep
from ..core.decide import DEVICE_METHODS, MODE_METHODS, STEP_METHODS
from ..lint import unconverted_lines  # what lint leaves for a person: a step holding it is not lifted
from ..inits import converted_init_calls, facts_for_target
from ..sequential_facts import mapping_sequentials
from ..param_reads import param_reads
from ..data_generators import data_generator_calls
from ..isinstance_facts import isinstance_facts
from ..data_facts import array_loaders
from ..model import Finding
from ..rules import load_rules
from ..structure_facts import analyse as analyse_structure
from ..targets import Target, get_target
from .calls import CallsMixin
from .classes import ClassesMixin
from .cst_util import names_in
from .dispatch import DispatchMixin
from .imports import _module_level_names, not_tensor_names
from .node_ids import NodeMap, NodeSet
from .inits import InitsMixin
from .methods import MethodsMixin
from .references import ReferencesMixin
from ..parallel_facts import ParallelFacts, parallel_facts
from .parallel import ParallelMixin
from .scopes import ScopesMixin, _Scope
from .skipping import SkipIndex, SkipMixin
from .statements import StatementsMixin
from .structure import StructureMixin
from .todos import TodosMixin
from .trainsteps import TrainStepsMixin

MIXINS = (TodosMixin, ScopesMixin, ReferencesMixin, StatementsMixin, CallsMixin, MethodsMixin, ClassesMixin,
          TrainStepsMixin, StructureMixin, InitsMixin, ParallelMixin, SkipMixin, DispatchMixin)


class TorchToNNX(*MIXINS, cst.CSTTransformer):
    def __init__(self, path: str, aliases: dict[str, str], module: cst.Module, unsafe_fixes: bool = True,
                 target: str | Target | None = None, helpers_module: str | None = None,
                 imported_classes: dict[str, bool] | None = None, source: str | None = None,
                 tree: ast.Module | None = None):
        super().__init__()
        # `source`: module.code when the caller has it (a parsed module prints back as its text
        # exactly; printing it costs as much as parsing it), `tree`: ast.parse of it
        code = module.code if source is None else source
        self.code = code  # the text `module` prints (positions index into it)
        self.line_offsets: list[int] | None = None  # where each line of it starts (scopes.py)
        self.hash_lines: set[int] | None = None  # lines holding a `#` (todos._may_hold_comments), when asked
        # converted module classes imported from other files of the run -> takes rngs (project_classes)
        self.imported_classes = dict(imported_classes or {})
        self.path = path
        self.helpers_module = helpers_module  # import helpers from it (None: define them in the file)
        self.unsafe_fixes = unsafe_fixes
        self.target = get_target(target)  # every piece of converted text is spelled by the target
        self.rules = load_rules(target=self.target.table)
        self.aliases = aliases
        self.findings: list[Finding] = []
        self.helpers: set[str] = set()
        self.scopes: list[_Scope] = [_Scope(bound=set(), kind="module", has_backward=".backward(" in code)]
        self.todo_stack: list[list[str]] = []
        self.class_stack: list[bool] = []
        self.optimizers: dict[str, str] = {}  # optimizer variable -> model variable
        self.statement_pos: NodeMap[tuple[int, int]] = NodeMap()  # a statement made from a visited one -> its position
        self.positions: dict[int, tuple[int, int]] = {}  # id of a node -> its start (the engine's positions.py)
        self.ends: dict[int, tuple[int, int]] = {}  # id of a node -> where its code ends
        self.statement_level_calls: set[int] = set()  # torch.manual_seed(...) statements, with torch.no_grad()
        self.class_kept_layers: list[set[str]] = []  # per enclosing class: torch layers left PyTorch
        self.call_statement: dict[int, str] = {}  # id of a call -> how it stands (core.decide EXPR, WITH, ...)
        self.optimizer_vars: set[str] = set()  # names assigned a torch.optim optimizer
        self.scheduler_vars: set[str] = set()  # names assigned a torch.optim.lr_scheduler
        self.wrapped = NodeSet()  # replacement expressions we parenthesised
        self.local_imports = False  # a torch import inside a function (references.visit_Import)
        self.handled_refs: set[int] = set()  # torch names reported by the construct around them
        self.loss_vars: set[str] = set()  # names bound to a loss module (criterion = nn.MSELoss())
        # optimizers whose step() stays PyTorch (see trainstep.train_step_analysis)
        tree = ast.parse(code) if tree is None else tree  # one parse for every fact the ast front end reads too
        analysis = (trainstep.train_step_analysis(code, unconverted_lines(code, self.target.name),
                                                  target=self.target, tree=tree)
                    if ".step(" in code and self.target.converts_train_steps else None)
        self.step_lines, self.kept_optimizers, self.clips = analysis if analysis is not None else (set(), {}, {})
        self.schedules = analysis.schedules if analysis is not None else None  # lr schedulers (schedule_plan)
        self.optimizer_calls: dict[int, str] = {}  # id of `X = torch.optim.Y(...)`'s call -> X
        self.isinstance_types: set[int] = set()  # ids of T in isinstance(x, T)
        self.annotation_depth = 0  # > 0 inside an annotation (references.py)
        self.todo_seen: set[tuple[int, str]] = set()  # (line, "CODE message") already reported
        self.called_attributes: set[int] = set()  # x.grad(...) is a method call, not the attribute .grad
        self.call_stack: list[tuple[int, bool, str | None]] = []  # calls lint records: (id, torch?, method)
        # the method calls lint records (lint._method_names): the table's, device moves, train/eval, the step
        self.recorded_methods = frozenset(self.rules.methods) | DEVICE_METHODS | MODE_METHODS | set(STEP_METHODS)
        # buffers, index assignments, weight ties, builder methods (read off the ast, as lint does)
        self.tree = tree  # the source's ast (a target's class pass reads facts off it, as lint does)
        self.structure = analyse_structure(tree)
        self.isinstance_facts = isinstance_facts(tree, code)  # names a converted isinstance test may also match
        self.class_names: list[str] = []  # enclosing class names
        self.converted_classes = self._find_module_classes(module)
        self.rngs_classes = self._classes_taking_rngs(module)
        self.super_rngs_classes = self._bases_taking_rngs(module)  # super().__init__(..., rngs=rngs)
        self.module_names = _module_level_names(module)
        self.not_tensors = not_tensor_names(module, self.target)
        self.unique_from: dict[str, int] = {}  # _unique(base): where the search for a free name goes on
        self.parsed_module = module
        self._used_names: set[str] | None = None  # used_names, worked out when first asked
        self.step_outputs: NodeMap[frozenset[str]] = NodeMap()  # a train-step call -> the names it assigns
        self.gated_blocks = NodeSet()  # `if` bodies holding only OPT.step(); OPT.zero_grad()
        self.pending_inits: list[tuple[_Scope, cst.BaseStatement, str]] = []  # (scope, call, statement)
        # nn.init sites, apply(fn); none for a target that does not rewrite them (lint the same)
        self.init_facts = facts_for_target(tree, code, self.target.converts_inits, self.rules)
        # what the target leaves (lint asks the same)
        self.target_sites = self.target.module_sites(tree, lambda: converted_init_calls(self.init_facts, self.rules))
        # nn.Sequential(OrderedDict name); a call whose name ends in Sequential spells it in the text
        self.mapping_sequentials = mapping_sequentials(tree) if "Sequential" in code else set()
        self.param_reads = param_reads(tree)  # `self.p` handed to einops
        self.data_generators = data_generator_calls(tree, code)  # generators a DataLoader keeps (PyTorch's)
        # data-parallel wrappers, `model.module` reads (none for a target without train steps: marked)
        self.parallel = parallel_facts(tree, code) if self.target.converts_data_parallel else ParallelFacts()
        self.removed_calls: set[int] = set()  # ids of statement calls converted to nothing (process group)
        self.array_loaders = array_loaders(tree, code)  # DataLoader(TensorDataset(...)) (data_facts)
        self.skipped: set[int] = set()  # ids of statement lines the visit leaves as parsed (skipping.py)
        self.skip_index = SkipIndex(self, tree)  # last: it reads the facts above

    @property
    def used_names(self) -> set[str]:
        """Every name the file reads or binds (a lifted train step's new names avoid them)."""
        if self._used_names is None:
            self._used_names = names_in(self.parsed_module) | self.module_names
        return self._used_names
