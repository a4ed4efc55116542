using CsCheck;
using Pipeline.UnitTests.Processor;
using Xunit.Abstractions;

namespace Pipeline.IntegrationTests.Processor;

/// <summary>
/// The unit-level property test (FeedModelPropertyTests) in small, through the embedded broker with the real
/// processor host: real partitioning, repartition topics, RocksDB stores and exactly-once transactions.
/// </summary>
public sealed class FeedModelBrokerTests(ITestOutputHelper output)
{
    private const int Scenarios = 3;
    private const int EventsPerScenario = 150;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task RandomScenarios_EveryFeedEqualsTheReferenceModel()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await using var processor = await ProcessorHarness.CreateAsync(backfillSize: 3, feedSize: 5, timeout.Token);
        await processor.StartProcessorAsync(timeout.Token);
        var run = new FeedRun(processor);
        await run.FollowProbeAuthorAsync(timeout.Token);

        // Scenarios share the processor but not their users, so none can affect another; a difference names the
        // user, and the user's prefix names the scenario and its seed.
        var seeds = FeedScenarios.Seeds(Scenarios);
        for (var scenario = 0; scenario < seeds.Length; scenario++)
        {
            string[] users = [$"s{scenario}-ann", $"s{scenario}-bob", $"s{scenario}-bobby", $"s{scenario}-cat", $"s{scenario}-dan", $"s{scenario}-eve"];
            var events = FeedScenarios.Event(users, postIds: 30).Array[EventsPerScenario].Generate(seeds[scenario]);
            output.WriteLine($"scenario s{scenario}: seed {seeds[scenario]} ({FeedScenarios.SeedsVariable}={seeds[scenario]} replays it)");

            await run.ApplyAsync(events, timeout.Token);
        }

        await run.AssertMatchesModelAsync($"seeds {string.Join(",", seeds)}", output, timeout.Token);
    }
}
