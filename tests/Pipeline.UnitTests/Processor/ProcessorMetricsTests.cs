using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class ProcessorMetricsTests
{
    /// <summary>The group's lag is published once the watchdog has read it, and not as a made-up zero before.</summary>
    [Fact]
    public void GroupLag_IsAbsentUntilRead_ThenTheLastReading()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new ProcessorMetrics(meters);
        using var lag = new MetricCollector<long>(meters, ProcessorMetrics.MeterName, "feed.processor.group.lag");

        lag.RecordObservableInstruments();
        Assert.Empty(lag.GetMeasurementSnapshot());

        metrics.GroupLagRead(1_234);
        metrics.GroupLagRead(56);
        lag.RecordObservableInstruments();
        Assert.Equal(56, lag.LastMeasurement!.Value);
    }
}
