using Microsoft.Extensions.Options;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.UnitTests.StreamEdge.Auth;

/// <summary>The start-up checks, through the same DataAnnotations validator ValidateDataAnnotations() installs.</summary>
public sealed class AuthOptionsTests
{
    private const string Key = "ZmVlZC1waXBlbGluZSBERVZFTE9QTUVOVCBrZXk6IHB1YmxpYywgbG9jYWwgdXNlIG9ubHkh";

    [Fact]
    public void DevelopmentKeys_AreAccepted() =>
        Assert.True(Validate(Keys(new AuthOptions { Issuer = "feed-pipeline-dev", Audience = "feed-edge" }, Key)).Succeeded);

    [Fact]
    public void Authority_AloneIsAccepted_WithoutAnIssuer() =>
        Assert.True(Validate(new AuthOptions { Authority = "https://login.example.com/tenant", Audience = "feed-edge" }).Succeeded);

    [Fact]
    public void NeitherAuthorityNorKeys_FailsNamingBoth() =>
        Assert.Contains("set exactly one of Auth:Authority", Validate(new AuthOptions { Issuer = "i", Audience = "a" }).FailureMessage, StringComparison.Ordinal);

    [Fact]
    public void AuthorityAndKeys_Fails() =>
        Assert.False(Validate(Keys(new AuthOptions { Authority = "https://login.example.com", Issuer = "i", Audience = "a" }, Key)).Succeeded);

    [Theory]
    [InlineData("c2hvcnQ=")]
    [InlineData("not base64!")]
    public void WeakOrGarbledKey_Fails(string key) =>
        Assert.Contains("Auth:SigningKeys:0 must be base64 of at least 32 bytes", Validate(Keys(new AuthOptions { Issuer = "i", Audience = "a" }, key)).FailureMessage, StringComparison.Ordinal);

    [Fact]
    public void KeysWithoutIssuer_Fails() =>
        Assert.Contains("Auth:Issuer is required", Validate(Keys(new AuthOptions { Audience = "a" }, Key)).FailureMessage, StringComparison.Ordinal);

    [Fact]
    public void MissingAudience_Fails() =>
        Assert.Contains("Auth:Audience is required", Validate(Keys(new AuthOptions { Issuer = "i" }, Key)).FailureMessage, StringComparison.Ordinal);

    [Fact]
    public void WildcardOriginWithCredentials_Fails()
    {
        var cors = new BrowserCorsOptions { AllowCredentials = true };
        cors.AllowedOrigins.Add("*");

        Assert.Contains("may not contain \"*\" while Cors:AllowCredentials is true", Validate(cors).FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void WildcardOriginWithoutCredentials_IsAccepted()
    {
        var cors = new BrowserCorsOptions();
        cors.AllowedOrigins.Add("*");

        Assert.True(Validate(cors).Succeeded);
    }

    [Theory]
    [InlineData("https://app.example.com", true)]
    [InlineData("http://localhost:5173", true)]
    [InlineData("https://app.example.com/", false)]
    [InlineData("https://app.example.com/path", false)]
    [InlineData("app.example.com", false)]
    [InlineData("ftp://app.example.com", false)]
    public void Origin_MustBeSchemeHostAndPort(string origin, bool accepted)
    {
        var cors = new BrowserCorsOptions();
        cors.AllowedOrigins.Add(origin);

        Assert.Equal(accepted, Validate(cors).Succeeded);
    }

    private static AuthOptions Keys(AuthOptions options, string key)
    {
        options.SigningKeys.Add(key);
        return options;
    }

    private static ValidateOptionsResult Validate<T>(T options)
        where T : class =>
        new DataAnnotationValidateOptions<T>(null).Validate(null, options);
}
