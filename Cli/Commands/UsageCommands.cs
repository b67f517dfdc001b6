using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>The tenant's usage and availability for a month, as billing measures them.</summary>
internal static class UsageCommands
{
    public static Command Usage(CliEnvironment environment)
    {
        var month = Month();
        return Define.Command("usage", "Usage per instance and meter this month (or --month), with the estimated charge and SLA credit", environment, [month], async session =>
        {
            var usage = await session.Api.GetAsync(WithMonth($"{await session.TenantPathAsync()}/usage", session.Value(month)), session.CancellationToken);
            if (session.Output.Format == OutputFormat.Json || usage is null)
            {
                session.Output.Json(usage);
                return;
            }

            var currency = usage.Text("currency")?.ToUpperInvariant();
            session.Output.Item(usage, [
                ("Month", n => n.Text("month")), ("Plan", n => n.Text("plan")), ("Metered until", n => n.Time("meteredUntil")),
                ("Estimated charge", n => Money(n.Text("estimatedChargeMinorUnits"), currency)), ("SLA credit", n => Money(n.Text("slaCreditMinorUnits"), currency)),
            ]);
            var rows = new JsonArray();
            foreach (var instance in (usage["instances"] as JsonArray ?? []).OfType<JsonNode>())
            {
                foreach (var meter in (instance["meters"] as JsonArray ?? []).OfType<JsonNode>())
                {
                    rows.Add(new JsonObject { ["instance"] = instance.Text("instanceId"), ["meter"] = meter.Text("meter"), ["quantity"] = meter.Text("quantity"), ["charge"] = Money(instance.Text("estimatedChargeMinorUnits"), currency) });
                }
            }

            session.Output.List(new JsonObject { ["items"] = rows }, [("Instance", n => n.Text("instance")), ("Meter", n => n.Text("meter")), ("Quantity", n => n.Text("quantity")), ("Instance charge", n => n.Text("charge"))]);
        });
    }

    public static Command Sla(CliEnvironment environment)
    {
        var month = Month();
        return Define.Command("sla", "Availability per instance this month (or --month) against the plan's target", environment, [month], async session =>
        {
            var sla = await session.Api.GetAsync(WithMonth($"{await session.TenantPathAsync()}/sla", session.Value(month)), session.CancellationToken);
            if (session.Output.Format == OutputFormat.Json || sla is null)
            {
                session.Output.Json(sla);
                return;
            }

            session.Output.Item(sla, [("Month", n => n.Text("month")), ("Uptime %", n => n.Text("uptimePercent")), ("Bad minutes", n => n.Text("badMinutes"))]);
            session.Output.List(sla, [
                ("Instance", n => n.Text("instanceId")), ("Status", n => n.Text("status")), ("Uptime %", n => n.Text("uptimePercent")), ("Target %", n => n.Text("targetPercent")),
                ("Bad min", n => n.Text("badMinutes")), ("Maintenance min", n => n.Text("maintenanceMinutes")), ("Credit %", n => n.Text("creditPercent")),
            ], itemsProperty: "instances");
        });
    }

    private static Option<string?> Month() => Define.Optional("--month", "The month, yyyy-MM (default: this one)");

    private static string WithMonth(string path, string? month) => month is null ? path : $"{path}?month={Uri.EscapeDataString(month)}";

    private static string? Money(string? minorUnits, string? currency) =>
        long.TryParse(minorUnits, CultureInfo.InvariantCulture, out var units) ? $"{units / 100m:0.00} {currency}" : null;
}
