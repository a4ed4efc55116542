using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipeline.Processor;

namespace Pipeline.IntegrationTests.Processor;

public sealed class ProcessorHostReuseTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Two processor hosts one after the other in one process, each owning its logger factory as Program.cs's host
    /// does. FeedProcessorService hands that factory to Streamiz, which keeps it in a process-wide static and builds
    /// the next topology with it; once the first host is disposed, the second fails in FeedTopology.Build with
    /// ObjectDisposedException ('LoggerFactory') and never ran — until StreamizLogging gave Streamiz a process-long factory.
    /// </summary>
    [Fact]
    public async Task SecondHostInTheSameProcess_AfterTheFirstWasDisposed_Runs()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await using var firstBroker = await ProcessorHarness.CreateAsync(backfillSize: 3, feedSize: 5, timeout.Token);
        await using var secondBroker = await ProcessorHarness.CreateAsync(backfillSize: 3, feedSize: 5, timeout.Token);
        using (var first = firstBroker.BuildProcessor(loggerFactory: null))
            {
                await first.StartAsync(timeout.Token);
                await ProcessorHarness.WaitUntilRunningAsync(first, timeout.Token);
                await first.StopAsync(timeout.Token);
            }

            using var second = secondBroker.BuildProcessor(loggerFactory: null);
            await second.StartAsync(timeout.Token);
            var service = second.Services.GetRequiredService<FeedProcessorService>();
            var failure = await Record.ExceptionAsync(() => ProcessorHarness.WaitUntilRunningAsync(second, timeout.Token));
            await second.StopAsync(timeout.Token);

        Assert.True(failure is null, $"the second processor host did not run: {service.ExecuteTask?.Exception?.InnerException ?? failure}");
    }
}
