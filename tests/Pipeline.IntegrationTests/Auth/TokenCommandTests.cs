using System.CommandLine;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pipeline.DevStack;

namespace Pipeline.IntegrationTests.Auth;

/// <summary>The README's <c>token</c> command prints exactly one token, and the edge's own validation accepts it.</summary>
public sealed class TokenCommandTests
{
    [Fact]
    public async Task ServiceToken_CarriesSubjectRoleAndLifetime()
    {
        var (exit, stdout, _) = Run("--user", "alice", "--service", "--ttl", "30m");

        Assert.Equal(0, exit);
        var token = Assert.Single(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = DevTokens.Issuer,
            ValidAudience = DevTokens.Audience,
            IssuerSigningKey = new SymmetricSecurityKey(Convert.FromBase64String(DevTokens.SigningKey)),
        });

        Assert.True(result.IsValid, result.Exception?.Message);
        Assert.Equal("alice", result.Claims["sub"]);
        Assert.Equal("feed.service", result.Claims["role"]);
        var lifetime = result.SecurityToken.ValidTo - result.SecurityToken.ValidFrom;
        Assert.Equal(TimeSpan.FromMinutes(30), lifetime);
    }

    [Fact]
    public void UserToken_HasNoRoleAndLastsAnHourByDefault()
    {
        var (exit, stdout, stderr) = Run("--user", "bob");

        Assert.Equal(0, exit);
        var token = new JsonWebToken(stdout.Trim());
        Assert.Equal("bob", token.Subject);
        Assert.False(token.TryGetPayloadValue<string>("role", out _));
        Assert.Equal(TimeSpan.FromHours(1), token.ValidTo - token.ValidFrom);
        Assert.Contains("own feed only", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("2h", 7200)]
    [InlineData("1d", 86400)]
    [InlineData("00:10:00", 600)]
    public void Lifetime_AcceptsUnitsAndTimeSpans(string text, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), TokenCommand.ParseLifetime(text));

    [Theory]
    [InlineData("0h")]
    [InlineData("-5m")]
    [InlineData("soon")]
    [InlineData("5y")]
    public void Lifetime_RefusesWhatIsNoPositiveDuration(string text)
    {
        Assert.Null(TokenCommand.ParseLifetime(text));
        var (exit, stdout, stderr) = Run("--user", "alice", "--ttl", text);
        Assert.NotEqual(0, exit);
        Assert.Empty(stdout);
        Assert.Contains("--ttl", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingUser_IsAnError()
    {
        var (exit, stdout, _) = Run("--service");

        Assert.NotEqual(0, exit);
        Assert.Empty(stdout);
    }

    private static (int Exit, string Stdout, string Stderr) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = TokenCommand.Create().Parse(args).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
