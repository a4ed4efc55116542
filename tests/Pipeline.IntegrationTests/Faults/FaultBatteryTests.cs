using Pipeline.FaultBattery;
using Xunit.Abstractions;

namespace Pipeline.IntegrationTests.Faults;

/// <summary>
/// The short version of every fault-battery scenario (small counts, a few faults), each with its own broker,
/// processor(s) and edge as separate processes. The full battery is `tests/fault-battery.sh`; its table lives in
/// docs/reliability.md. Run alone: each scenario loads both cores, and timing noise from other tests would only
/// slow it down (nothing here asserts a time).
/// </summary>
[Collection(FaultBatteryGroup.Name)]
public sealed class FaultBatteryTests(ITestOutputHelper output)
{
    private static readonly BatterySize Brief = new(Brief: true);

    private static readonly string[] Reported = ["processor-kill-eos", "processor-kill-alo", "two-processors-kill"];

    public static TheoryData<string> Held { get; } = [.. FaultScenarios.All.Keys.Except(Reported)];

    public static TheoryData<string> ReportedOnly { get; } = [.. Reported];

    [Theory]
    [MemberData(nameof(Held))]
    public async Task Scenario_LosesDuplicatesAndReordersNothing(string scenario)
    {
        var result = await RunAsync(scenario);

        Assert.True(result.Passed, $"{scenario}: {result.Notes}");
        Assert.True(result.Feeds.Expected > 0, "the scenario verified something");
        Assert.Equal((0, 0, 0, 0), (result.Feeds.Lost, result.Feeds.Duplicated, result.Feeds.Reordered, result.Feeds.Unexpected));
    }

    /// <summary>
    /// The SIGKILL scenarios the battery reports rather than holds (docs/reliability.md says why): they must still
    /// run to the end, with the pipeline recovering and every user's feed verified.
    /// </summary>
    [Theory]
    [MemberData(nameof(ReportedOnly))]
    public async Task ReportedScenario_RecoversAndIsVerified(string scenario)
    {
        var result = await RunAsync(scenario);

        Assert.NotNull(result.ReportedOnly);
        Assert.True(result.Feeds.Expected > 0 && result.Feeds.Delivered > 0, "the pipeline recovered and the feeds were verified");
        Assert.Equal(0, result.UnexpectedRestarts);
    }

    private async Task<ScenarioResult> RunAsync(string scenario)
    {
        // The battery keeps each process's output and the updates it read (FAULT_BATTERY_DUMP). A failure that CI
        // sees once in many runs leaves nothing else behind, so a failing scenario prints what its processes logged.
        var dump = Directory.CreateTempSubdirectory($"fault-battery-{scenario}-");
        Environment.SetEnvironmentVariable("FAULT_BATTERY_DUMP", dump.FullName);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
            var result = await FaultScenarios.All[scenario](Brief, timeout.Token);
            output.WriteLine(ResultTable.Markdown([result]));
            if (!result.Passed || !result.Feeds.Exact)
            {
                WriteDiagnosis(dump);
            }
            else
            {
                dump.Delete(recursive: true);
            }

            return result;
        }
        finally
        {
            Environment.SetEnvironmentVariable("FAULT_BATTERY_DUMP", null);
        }
    }

    /// <summary>Each process's warnings and errors (a console-log level line and the message under it), then its last lines.</summary>
    private void WriteDiagnosis(DirectoryInfo dump)
    {
        output.WriteLine($"Kept in {dump.FullName}: every process's output and the updates the battery read.");
        foreach (var log in dump.EnumerateFiles("*.log").OrderBy(f => f.Name))
        {
            var lines = File.ReadAllLines(log.FullName);
            var flagged = lines
                .Select((line, i) => (line, i))
                .Where(l => l.line.StartsWith("warn:", StringComparison.Ordinal) || l.line.StartsWith("fail:", StringComparison.Ordinal) || l.line.StartsWith("crit:", StringComparison.Ordinal))
                .SelectMany(l => lines.Skip(l.i).Take(2))
                .Take(80);
            output.WriteLine($"==== {log.Name}: warnings and errors");
            foreach (var line in flagged)
            {
                output.WriteLine(line);
            }

            output.WriteLine($"==== {log.Name}: last lines");
            foreach (var line in lines.TakeLast(25))
            {
                output.WriteLine(line);
            }
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultBatteryGroup
{
    public const string Name = "fault battery";
}
