using System.Net;
using Feed.V1;
using Grpc.Core;
using Pipeline.IntegrationTests.Pipeline;

namespace Pipeline.IntegrationTests.Auth;

/// <summary>grpc-web on the HTTP/1.1 port as a browser meets it: CORS from the allow-list only, tokens as on native gRPC.</summary>
[Collection(PipelineTestGroup.Name)]
public sealed class BrowserAccessTests
{
    private const string SubscribePath = "/feed.v1.FeedService/Subscribe";
    private const string GrpcWebRequestHeaders = "authorization,content-type,grpc-timeout,x-grpc-web,x-user-agent";

    /// <summary>What the policy answers whatever was asked: the grpc-web headers plus Grpc.Net.Client.Web's grpc-accept-encoding.</summary>
    private const string AllowedRequestHeaders = "authorization,content-type,grpc-accept-encoding,grpc-timeout,x-grpc-web,x-user-agent";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly PipelineFixture _pipeline;

    public BrowserAccessTests(PipelineFixture pipeline)
    {
        _pipeline = pipeline;
    }

    [Fact]
    public async Task GrpcWeb_WithoutToken_UnauthenticatedBeforeAnyEvent()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        using var channel = _pipeline.WebChannel(new Grpc.Net.Client.GrpcChannelOptions());

        using var call = new FeedService.FeedServiceClient(channel).Subscribe(new SubscribeRequest { UserId = "anyone" }, cancellationToken: timeout.Token);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains("needs a JWT", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GrpcWeb_ToAnotherUsersFeed_PermissionDenied()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        using var channel = _pipeline.WebChannel(_pipeline.Tokens.ChannelOptions("web-intruder"));

        using var call = new FeedService.FeedServiceClient(channel).Subscribe(new SubscribeRequest { UserId = "web-victim" }, cancellationToken: timeout.Token);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
    }

    [Fact]
    public async Task Preflight_FromAllowedOrigin_AllowsGrpcWebWithoutCredentials()
    {
        using var client = new HttpClient();
        using var response = await client.SendAsync(Preflight(PipelineFixture.BrowserOrigin)).WaitAsync(Timeout);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal(PipelineFixture.BrowserOrigin, Header(response, "Access-Control-Allow-Origin"));
        Assert.Equal("POST", Header(response, "Access-Control-Allow-Methods"));
        Assert.Equal(AllowedRequestHeaders.Split(','), HeaderNames(response, "Access-Control-Allow-Headers"));
        Assert.Equal("600", Header(response, "Access-Control-Max-Age"));
        Assert.Null(Header(response, "Access-Control-Allow-Credentials"));
    }

    [Fact]
    public async Task Preflight_FromUnlistedOrigin_GetsNoCorsHeaders()
    {
        using var client = new HttpClient();
        using var response = await client.SendAsync(Preflight("https://evil.example")).WaitAsync(Timeout);

        Assert.DoesNotContain(response.Headers, h => h.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task RefusedCrossOriginCall_ExposesOnlyTheGrpcStatusHeaders()
    {
        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{_pipeline.WebPort}{SubscribePath}")
        {
            // An empty SubscribeRequest in one grpc-web-text frame: flag 0, length 0, base64.
            Content = new StringContent("AAAAAAA="),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc-web-text");
        request.Headers.Add("Origin", PipelineFixture.BrowserOrigin);
        request.Headers.Add("X-Grpc-Web", "1");

        using var response = await client.SendAsync(request).WaitAsync(Timeout);

        Assert.Equal(PipelineFixture.BrowserOrigin, Header(response, "Access-Control-Allow-Origin"));
        Assert.Equal(["grpc-accept-encoding", "grpc-encoding", "grpc-message", "grpc-status"], HeaderNames(response, "Access-Control-Expose-Headers"));
        Assert.Equal(((int)StatusCode.Unauthenticated).ToString(System.Globalization.CultureInfo.InvariantCulture), Header(response, "grpc-status"));
        Assert.Empty(await response.Content.ReadAsByteArrayAsync().WaitAsync(Timeout));
    }

    [Fact]
    public async Task OtherEndpoints_GetNoCorsAnswer_EvenFromAnAllowedOrigin()
    {
        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{_pipeline.WebPort}/metrics");
        request.Headers.Add("Origin", PipelineFixture.BrowserOrigin);

        using var response = await client.SendAsync(request).WaitAsync(Timeout);

        // Served (a scrape carries no Origin in practice), but a page at an allowed origin may not read it.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(response.Headers, h => h.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Healthz_StaysAnonymous()
    {
        using var client = new HttpClient();
        using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{_pipeline.WebPort}/healthz")).WaitAsync(Timeout);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync().WaitAsync(Timeout));
    }

    private HttpRequestMessage Preflight(string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, $"http://127.0.0.1:{_pipeline.WebPort}{SubscribePath}");
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", GrpcWebRequestHeaders);
        return request;
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? string.Join(',', values) : null;

    /// <summary>A comma-separated list of header names, lower-cased and sorted: CORS does not promise an order or case.</summary>
    private static IEnumerable<string> HeaderNames(HttpResponseMessage response, string name) =>
        (Header(response, name) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(h => h.ToLowerInvariant())
            .Order(StringComparer.Ordinal);
}
