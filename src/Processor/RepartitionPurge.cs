using System.Reflection;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Pipeline.Processor;

/// <summary>
/// After each commit Streamiz deletes the repartition topics' consumed records (DeleteRecords) and never looks at
/// the outcome. A broker that refuses the request (the embedded broker does not implement it; a real one may deny
/// it by ACL) leaves one faulted task per commit for the finalizer to publish as an unobserved exception, which
/// cost the finalizer thread 15 % of the process's CPU in a profile, and nobody learns that the repartition
/// topics now grow until their retention. The admin clients Streamiz builds are wrapped so that each purge's
/// outcome is observed: the first refusal is logged as a warning with what it means, and every refusal is counted
/// (<c>feed_processor_repartition_purges_refused_total</c>). Streamiz gets its builders through <see cref="ObservedKafkaClients"/>.
/// </summary>
public sealed partial class RepartitionPurge(ProcessorMetrics metrics, ILogger logger)
{
    /// <summary>An admin client builder whose clients are wrapped by <see cref="Wrap"/>.</summary>
    public AdminClientBuilder Builder(AdminClientConfig config) => new ObservingBuilder(config, this);

    /// <summary>The client that Streamiz gets: <paramref name="inner"/>, with each purge's outcome observed.</summary>
    public IAdminClient Wrap(IAdminClient inner)
    {
        var proxy = DispatchProxy.Create<IAdminClient, ObservingAdminClient>();
        ((ObservingAdminClient)(object)proxy).Bind(inner, this);
        return proxy;
    }

    internal void Observe(Task purge) =>
        purge.ContinueWith(
            static (faulted, state) => ((RepartitionPurge)state!).Refuse(faulted.Exception!.GetBaseException()),
            this,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    private void Refuse(Exception reason)
    {
        if (metrics.PurgeRefused() == 1)
        {
            LogRefused(logger, reason.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The broker refused to delete consumed repartition records ({Reason}); the repartition topics will hold them until their retention (1 day by default), so size their disks for that, or allow DeleteRecords (ACL: DELETE on the topics). Further refusals are not logged")]
    private static partial void LogRefused(ILogger logger, string reason);

    private sealed class ObservingBuilder(AdminClientConfig config, RepartitionPurge purge) : AdminClientBuilder(config)
    {
        public override IAdminClient Build() => purge.Wrap(base.Build());
    }

    /// <summary>Forwards every call to the real client; observes the task DeleteRecordsAsync returns.</summary>
    public class ObservingAdminClient : DispatchProxy
    {
        private IAdminClient _inner = null!;
        private RepartitionPurge _purge = null!;

        internal void Bind(IAdminClient inner, RepartitionPurge purge) => (_inner, _purge) = (inner, purge);

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            object? result;
            try
            {
                result = targetMethod!.Invoke(_inner, args);
            }
            catch (TargetInvocationException ex) when (ex.InnerException is not null)
            {
                ExceptionDispatchInfo.Throw(ex.InnerException);
                throw;
            }

            if (targetMethod.Name == nameof(IAdminClient.DeleteRecordsAsync) && result is Task purge)
            {
                _purge.Observe(purge);
            }

            return result;
        }
    }
}
