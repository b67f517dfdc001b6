using Billing.Usage;

namespace Billing.Tests.Usage;

public sealed class OperationsReadingTests
{
    private const string Info = "# Server\r\nrun_id:abc\r\nuptime_in_seconds:5\r\n\r\n# Stats\r\ntotal_commands_processed:999\r\ntotal_read_commands_processed:20\r\ntotal_write_commands_processed:100\r\n";

    [Fact]
    public void Operations_are_reads_plus_writes_not_every_command()
    {
        Assert.Equal(new OperationsReading("abc", 120), OperationsReading.Parse(Info));
        Assert.Null(OperationsReading.Parse("# Stats\r\ntotal_read_commands_processed:20\r\n"));
        Assert.Null(OperationsReading.Parse(null));
    }

    [Fact]
    public void A_restarted_process_counts_from_zero_and_a_repeated_reading_adds_nothing()
    {
        var first = new OperationsReading("run-1", 120);

        Assert.Equal(120, first.Since(null));
        Assert.Equal(0, first.Since(first));
        Assert.Equal(50, new OperationsReading("run-1", 170).Since(first));
        Assert.Equal(30, new OperationsReading("run-2", 30).Since(first));
        Assert.Equal(500, new OperationsReading("run-2", 500).Since(first));  // more than before, yet a new run
    }

    [Fact]
    public void Source_event_ids_name_the_instance_the_meter_and_the_hour()
    {
        var hour = UsageMeters.HourOf(new DateTimeOffset(2026, 11, 27, 10, 59, 59, TimeSpan.Zero));

        Assert.Equal(new DateTimeOffset(2026, 11, 27, 10, 0, 0, TimeSpan.Zero), hour);
        Assert.Equal("ins-x:instance_seconds_small:2026-11-27T10Z", UsageMeters.SourceEventId("ins-x", UsageMeters.InstanceSeconds("small"), hour));
    }
}
