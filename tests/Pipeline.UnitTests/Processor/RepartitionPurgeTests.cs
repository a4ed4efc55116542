using System.Reflection;
using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class RepartitionPurgeTests
{
    private static readonly TopicPartitionOffset[] Consumed = [new("app-updates-by-recipient-repartition", 0, 42)];

    [Fact]
    public async Task ARefusedPurge_IsObserved_LoggedOnce_AndCounted()
    {
        var logger = new FakeLogger<RepartitionPurge>();
        var metrics = new ProcessorMetrics();
        var purge = new RepartitionPurge(metrics, logger);
        var admin = purge.Wrap(RefusingAdmin.Create());

        for (var attempt = 0; attempt < 2; attempt++)
        {
            await Assert.ThrowsAnyAsync<KafkaException>(() => admin.DeleteRecordsAsync(Consumed));
        }

        Assert.Equal(2, metrics.PurgesRefused);
        var warning = Assert.Single(logger.Collector.GetSnapshot());
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("Broker: Policy violation", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OtherCalls_ReachTheRealClient_AndItsExceptionsComeThroughUnwrapped()
    {
        var admin = new RepartitionPurge(new ProcessorMetrics(), new FakeLogger<RepartitionPurge>()).Wrap(RefusingAdmin.Create());

        Assert.Equal("refusing-admin", admin.Name);
        Assert.Throws<KafkaException>(() => admin.GetMetadata(TimeSpan.FromSeconds(1)));
    }

    /// <summary>The point of the wrapper: a refused purge that nobody awaits leaves nothing for the finalizer.</summary>
    [Fact]
    public void AnUnawaitedRefusedPurge_IsNotPublishedAsUnobserved_WhileAnUnwrappedOneIs()
    {
        var unobserved = new List<string>();
        void Record(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            lock (unobserved)
            {
                unobserved.Add(e.Exception.GetBaseException().Message);
            }
        }

        TaskScheduler.UnobservedTaskException += Record;
        try
        {
            FireAndForget(new RepartitionPurge(new ProcessorMetrics(), new FakeLogger<RepartitionPurge>()).Wrap(RefusingAdmin.Create("wrapped-purge")));
            FireAndForget(RefusingAdmin.Create("bare-purge"));
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= Record;
        }

        lock (unobserved)
        {
            Assert.Contains("bare-purge", unobserved);
            Assert.DoesNotContain("wrapped-purge", unobserved);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FireAndForget(IAdminClient admin) => _ = admin.DeleteRecordsAsync(Consumed);

    [Fact]
    public void StreamizBuildsItsAdminClientsThroughTheWrapper()
    {
        var metrics = new ProcessorMetrics();
        var clients = new ObservedKafkaClients(new RepartitionPurge(metrics, new FakeLogger<RepartitionPurge>()), metrics);
        using var admin = clients.GetAdminBuilder(new AdminClientConfig { BootstrapServers = "127.0.0.1:9", ClientId = "purge-test" }).Build();

        Assert.IsAssignableFrom<DispatchProxy>(admin);
        Assert.StartsWith("purge-test#", admin.Name, StringComparison.Ordinal);
    }

    /// <summary>An admin client whose broker refuses DeleteRecords and has no metadata to give.</summary>
    public class RefusingAdmin : DispatchProxy
    {
        private string _reason = "Broker: Policy violation";

        public static IAdminClient Create(string? reason = null)
        {
            var admin = DispatchProxy.Create<IAdminClient, RefusingAdmin>();
            ((RefusingAdmin)(object)admin)._reason = reason ?? "Broker: Policy violation";
            return admin;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "get_Name" => "refusing-admin",
            nameof(IAdminClient.DeleteRecordsAsync) => Task.FromException<List<DeleteRecordsResult>>(new KafkaException(new Error(ErrorCode.PolicyViolation, _reason))),
            nameof(IAdminClient.GetMetadata) => throw new KafkaException(ErrorCode.Local_Transport),
            _ => throw new NotSupportedException(targetMethod?.Name),
        };
    }
}
