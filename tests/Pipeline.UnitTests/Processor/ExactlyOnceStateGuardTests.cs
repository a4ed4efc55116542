using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class ExactlyOnceStateGuardTests : IDisposable
{
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "state-guard-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
    }

    [Fact]
    public void ExactlyOnce_StoresSurviveACleanStop_AndAreWipedAfterAnUncleanOne()
    {
        var guard = Guard(DeliveryGuarantee.ExactlyOnce);
        var store = WriteStoreFile();

        guard.AfterCleanStop();
        guard.BeforeStart();
        Assert.True(File.Exists(store), "a clean stop keeps the stores");

        // No clean stop this time (the marker was consumed by the start above): a crash.
        guard.BeforeStart();
        Assert.False(File.Exists(store), "after an unclean stop the stores are rebuilt from the changelogs");
    }

    [Fact]
    public void AtLeastOnce_NeverWipes()
    {
        var guard = Guard(DeliveryGuarantee.AtLeastOnce);
        var store = WriteStoreFile();

        guard.BeforeStart();

        Assert.True(File.Exists(store));
    }

    [Fact]
    public void FirstStart_WithNoStateDirectory_IsFine()
    {
        Guard(DeliveryGuarantee.ExactlyOnce).BeforeStart();

        Assert.False(Directory.Exists(Path.Combine(_stateDir, "app")));
    }

    private ExactlyOnceStateGuard Guard(DeliveryGuarantee guarantee) =>
        new(new ProcessorOptions { StateDir = _stateDir, ApplicationId = "app", Guarantee = guarantee }, NullLogger.Instance);

    private string WriteStoreFile()
    {
        var path = Path.Combine(_stateDir, "app", "0_0", "rocksdb", "post-ledger", "000001.sst");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "state");
        return path;
    }
}
