using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>Every migration of the SLA's tables, for the host and for tests that prepare a database without one.</summary>
public static class SlaSchema
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        ProbeMinutes.Migration,
        MaintenanceWindows.Migration,
        SlaAssessments.Migration,
        MaintenanceWindows.PolicyMigration,
        ProbeMinutes.RunMigration,
        SlaAssessments.UnmeasuredMigration,
        SlaAssessments.PlanPeriodsMigration,
    ];
}
