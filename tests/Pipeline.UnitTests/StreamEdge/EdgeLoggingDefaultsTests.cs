using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipeline.StreamEdge;

namespace Pipeline.UnitTests.StreamEdge;

/// <summary>
/// ASP.NET Core keeps a log scope and an Activity alive for every open request whose hosting log category is enabled;
/// the edge turns the category off unless configuration asks for it.
/// </summary>
public sealed class EdgeLoggingDefaultsTests
{
    private const string Category = "Microsoft.AspNetCore.Hosting.Diagnostics";

    private static bool HostingLogEnabled(LogLevel level, params (string Key, string Value)[] settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));
        builder.AddStreamEdge();
        using var provider = builder.Services.BuildServiceProvider();
        return provider.GetRequiredService<ILoggerFactory>().CreateLogger(Category).IsEnabled(level);
    }

    [Fact]
    public void HostingDiagnostics_AreOffByDefault_EvenAtCritical()
    {
        Assert.False(HostingLogEnabled(LogLevel.Critical));
        Assert.False(HostingLogEnabled(LogLevel.Critical, ("Logging:LogLevel:Default", "Trace")));
    }

    [Fact]
    public void HostingDiagnostics_FollowConfiguration_WhenItNamesTheCategory()
    {
        Assert.True(HostingLogEnabled(LogLevel.Information, ($"Logging:LogLevel:{Category}", "Information")));
        Assert.False(HostingLogEnabled(LogLevel.Debug, ($"Logging:LogLevel:{Category}", "Information")));
    }
}
