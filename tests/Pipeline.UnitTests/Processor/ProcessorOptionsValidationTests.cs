using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipeline.Processor;

namespace Pipeline.UnitTests.Processor;

public sealed class ProcessorOptionsValidationTests
{
    private static ProcessorOptions Resolve(params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddFeedProcessor();
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<ProcessorOptions>>().Value;
    }

    /// <summary>The watchdog reads committed offsets: a stall timeout shorter than a few commits would see stalls that are not.</summary>
    [Fact]
    public void StallTimeout_ShorterThanThreeCommitIntervals_IsRefusedWithTheSettingsNamed()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => Resolve(("Processor:CommitIntervalMs", "10000"), ("Processor:StallTimeout", "00:00:20")));

        Assert.Contains("Processor:StallTimeout", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Processor:CommitIntervalMs", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>At-least-once commits every 30 s unless told otherwise, so the stall timeout is held to three of those.</summary>
    [Fact]
    public void StallTimeout_IsCheckedAgainstTheGuaranteesDefaultCommitInterval()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => Resolve(("Processor:Guarantee", "AtLeastOnce"), ("Processor:StallTimeout", "00:01:00")));
        Assert.Contains("Processor:StallTimeout", refused.Message, StringComparison.Ordinal);

        Assert.Equal(30_000, Resolve(("Processor:Guarantee", "AtLeastOnce")).EffectiveCommitIntervalMs);
        Assert.Equal(100, Resolve(("Processor:Guarantee", "ExactlyOnce"), ("Processor:StallTimeout", "00:00:01")).EffectiveCommitIntervalMs);
    }

    [Theory]
    [InlineData("10000", "00:00:30")]
    [InlineData("10000", "00:00:00")] // off
    [InlineData("100", "00:02:00")] // the defaults
    public void StallTimeout_OfThreeCommitIntervalsOrMore_OrOff_IsAccepted(string commitIntervalMs, string stallTimeout)
    {
        var options = Resolve(("Processor:CommitIntervalMs", commitIntervalMs), ("Processor:StallTimeout", stallTimeout));

        Assert.Equal(TimeSpan.Parse(stallTimeout, System.Globalization.CultureInfo.InvariantCulture), options.StallTimeout);
    }
}
