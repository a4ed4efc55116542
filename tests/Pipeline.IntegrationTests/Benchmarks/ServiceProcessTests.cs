using Pipeline.Benchmarks;

namespace Pipeline.IntegrationTests.Benchmarks;

/// <summary>Where the harness runs each service from: published builds when given and present, else its own output.</summary>
public sealed class ServiceProcessTests : IDisposable
{
    private readonly string _published = Directory.CreateTempSubdirectory("bench-published-").FullName;

    [Fact]
    public void AssemblyPath_PublishedService_RunsFromItsPublishDirectory()
    {
        Directory.CreateDirectory(Path.Combine(_published, "StreamEdge"));
        var edge = Path.Combine(_published, "StreamEdge", "StreamEdge.dll");
        File.WriteAllBytes(edge, []);

        Assert.Equal(edge, ServiceProcess.AssemblyPath("StreamEdge.dll", _published));
    }

    [Fact]
    public void AssemblyPath_ServiceNotPublished_RunsFromTheHarnessOutput()
    {
        Directory.CreateDirectory(Path.Combine(_published, "StreamEdge"));
        File.WriteAllBytes(Path.Combine(_published, "StreamEdge", "StreamEdge.dll"), []);

        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "DevStack.dll"), ServiceProcess.AssemblyPath("DevStack.dll", _published));
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "StreamEdge.dll"), ServiceProcess.AssemblyPath("StreamEdge.dll", published: null));
    }

    public void Dispose() => Directory.Delete(_published, recursive: true);
}
