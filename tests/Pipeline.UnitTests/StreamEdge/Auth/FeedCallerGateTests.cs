using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pipeline.StreamEdge;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.UnitTests.StreamEdge.Auth;

/// <summary>
/// The gate in front of the feed and ingest endpoints: nothing unauthenticated reaches them, a cached caller is
/// admitted without the authentication services, and every other endpoint is left alone.
/// </summary>
public sealed class FeedCallerGateTests : IDisposable
{
    private const string Token = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
    private readonly RecordingAuthentication _authentication = new();
    private readonly ServiceProvider _services;
    private readonly ValidatedTokenCache _cache;
    private readonly ClaimsPrincipal _alice = new(new ClaimsIdentity([new Claim("sub", "alice")], "Bearer"));
    private HttpContext? _admitted;

    public FeedCallerGateTests()
    {
        _services = new ServiceCollection().AddMetrics().AddSingleton<EdgeMetrics>().AddSingleton<IAuthenticationService>(_authentication).BuildServiceProvider();
        _cache = new ValidatedTokenCache(Options.Create(new AuthOptions()), _clock, _services.GetRequiredService<EdgeMetrics>());
    }

    public void Dispose()
    {
        _cache.Dispose();
        _services.Dispose();
    }

    [Fact]
    public async Task UnmarkedEndpoint_PassesWithoutAuthentication()
    {
        var context = Context(marked: false);

        await Gate().InvokeAsync(context);

        Assert.Same(context, _admitted);
        Assert.Equal(0, _authentication.Authentications);
    }

    [Fact]
    public async Task NoToken_IsChallengedAndNeverAdmitted()
    {
        _authentication.Result = AuthenticateResult.NoResult();
        var context = Context(marked: true);

        await Gate().InvokeAsync(context);

        Assert.Null(_admitted);
        Assert.Equal(1, _authentication.Challenges);
    }

    [Fact]
    public async Task RefusedToken_IsChallengedAndNeverAdmitted()
    {
        _authentication.Result = AuthenticateResult.Fail("its signature is missing or invalid");
        var context = Context(marked: true, Token);

        await Gate().InvokeAsync(context);

        Assert.Null(_admitted);
        Assert.Equal(1, _authentication.Challenges);
    }

    [Fact]
    public async Task UnauthenticatedPrincipal_IsChallenged_EvenWhenTheHandlerSucceeds()
    {
        _authentication.Result = AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity()), "Bearer"));

        await Gate().InvokeAsync(Context(marked: true, Token));

        Assert.Null(_admitted);
        Assert.Equal(1, _authentication.Challenges);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ValidToken_IsAdmittedAsItsCaller(bool handlerCompletesLater)
    {
        var ticket = new AuthenticationTicket(_alice, "Bearer");
        var later = new TaskCompletionSource<AuthenticateResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        _authentication.Pending = handlerCompletesLater ? later.Task : null;
        _authentication.Result = AuthenticateResult.Success(ticket);
        var context = Context(marked: true, Token);

        var admitting = Gate().InvokeAsync(context);
        if (handlerCompletesLater)
        {
            Assert.Null(_admitted);
            later.SetResult(AuthenticateResult.Success(ticket));
        }

        await admitting;
        Assert.Same(context, _admitted);
        Assert.Same(_alice, context.User);
        Assert.Equal(0, _authentication.Challenges);
    }

    [Fact]
    public async Task CachedToken_IsAdmittedWithoutTheAuthenticationServices()
    {
        _cache.Add(Token, _alice, _clock.GetUtcNow().UtcDateTime.AddHours(1));
        var context = Context(marked: true, Token);

        await Gate().InvokeAsync(context);

        Assert.Same(context, _admitted);
        Assert.Same(_alice, context.User);
        Assert.Equal(0, _authentication.Authentications);
    }

    [Fact]
    public async Task CachedTokenPastItsExpiry_IsAuthenticatedAgain()
    {
        _cache.Add(Token, _alice, _clock.GetUtcNow().UtcDateTime.AddMinutes(1));
        _clock.Advance(TimeSpan.FromMinutes(2));
        _authentication.Result = AuthenticateResult.Fail("it has expired");

        await Gate().InvokeAsync(Context(marked: true, Token));

        Assert.Null(_admitted);
        Assert.Equal(1, _authentication.Authentications);
        Assert.Equal(1, _authentication.Challenges);
    }

    private FeedCallerGate Gate() => new(context =>
    {
        _admitted = context;
        return Task.CompletedTask;
    }, _cache);

    private DefaultHttpContext Context(bool marked, string? authorization = null)
    {
        var context = new DefaultHttpContext { RequestServices = _services };
        context.SetEndpoint(new Endpoint(_ => Task.CompletedTask, marked ? new EndpointMetadataCollection(FeedCallerGate.Required) : EndpointMetadataCollection.Empty, "feed"));
        if (authorization is not null)
        {
            context.Request.Headers.Authorization = authorization;
        }

        return context;
    }

    /// <summary>Stands in for the JWT bearer handler behind <c>HttpContext.AuthenticateAsync</c> and <c>ChallengeAsync</c>.</summary>
    private sealed class RecordingAuthentication : IAuthenticationService
    {
        public AuthenticateResult Result { get; set; } = AuthenticateResult.NoResult();

        public Task<AuthenticateResult>? Pending { get; set; }

        public int Authentications { get; private set; }

        public int Challenges { get; private set; }

        public Task<AuthenticateResult> AuthenticateAsync(HttpContext context, string? scheme)
        {
            Authentications++;
            return Pending ?? Task.FromResult(Result);
        }

        public Task ChallengeAsync(HttpContext context, string? scheme, AuthenticationProperties? properties)
        {
            Challenges++;
            return Task.CompletedTask;
        }

        public Task ForbidAsync(HttpContext context, string? scheme, AuthenticationProperties? properties) => throw new NotSupportedException("the gate never forbids");

        public Task SignInAsync(HttpContext context, string? scheme, ClaimsPrincipal principal, AuthenticationProperties? properties) => throw new NotSupportedException();

        public Task SignOutAsync(HttpContext context, string? scheme, AuthenticationProperties? properties) => throw new NotSupportedException();
    }
}
