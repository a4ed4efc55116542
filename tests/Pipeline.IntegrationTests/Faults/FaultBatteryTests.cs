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
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var result = await FaultScenarios.All[scenario](Brief, timeout.Token);
        output.WriteLine(ResultTable.Markdown([result]));
        return result;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultBatteryGroup
{
    public const string Name = "fault battery";
}
