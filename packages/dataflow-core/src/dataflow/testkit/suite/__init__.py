"""DataFlow's shared contract tests. Collect them in an adapter's test module with::

    from dataflow.testkit.suite import *  # noqa: F403

The modules here are not named ``test_*`` on purpose: pytest collects the ``Test*``
classes only where an adapter imports them (with its ``dataflow_backend`` fixture), never
from this source tree. Tests name capabilities (``@pytest.mark.requires("savepoints")``),
never databases.
"""

from .attacks import TestBadInput, TestInjection
from .bulk import TestBulk, TestBulkStreamed
from .cancellation import TestCancellation, TestSecondCancellation
from .capability_pairs import TestCapabilityDeclaration, TestCapabilityPairs, TestRefusedCapabilities
from .crud import TestCrud, TestValidation
from .express_sync import TestExpressSync
from .filters import TestFilters
from .frames import TestFrames, TestFramesSync
from .input_limits import TestExactComparisons, TestInputLimits
from .lifecycle import TestLifecycle
from .migrations import TestMigrationCapabilities, TestMigrations
from .model_types import TestIds, TestTypes
from .relations import TestRelations
from .reliability import TestAtomicity, TestConcurrency
from .soft_delete import TestSoftDelete
from .streaming import TestStreaming
from .tenancy import TestTenancy, TestTenancyBulk
from .tenant_keys import TestTenantKeys
from .transactions import TestTransactionCapabilities, TestTransactions, TestTransactionTrust
from .workflow_atomicity import TestWorkflowBuildChecks, TestWorkflowTransactions
from .workflows import TestNodeSemantics, TestWorkflows

__all__ = [
    "TestAtomicity",
    "TestBadInput",
    "TestBulk",
    "TestBulkStreamed",
    "TestCancellation",
    "TestSecondCancellation",
    "TestCapabilityDeclaration",
    "TestCapabilityPairs",
    "TestConcurrency",
    "TestCrud",
    "TestExactComparisons",
    "TestExpressSync",
    "TestFilters",
    "TestFrames",
    "TestFramesSync",
    "TestIds",
    "TestInjection",
    "TestInputLimits",
    "TestLifecycle",
    "TestMigrationCapabilities",
    "TestMigrations",
    "TestRefusedCapabilities",
    "TestRelations",
    "TestSoftDelete",
    "TestStreaming",
    "TestTenancy",
    "TestTenancyBulk",
    "TestTenantKeys",
    "TestTransactionCapabilities",
    "TestTransactionTrust",
    "TestTransactions",
    "TestTypes",
    "TestValidation",
    "TestWorkflowBuildChecks",
    "TestWorkflowTransactions",
    "TestNodeSemantics",
    "TestWorkflows",
]
