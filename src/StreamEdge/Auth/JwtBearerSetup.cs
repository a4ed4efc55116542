using System.Globalization;
using System.Security.Claims;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Pipeline.StreamEdge.Auth;

/// <summary>
/// Turns <see cref="AuthOptions"/> into JwtBearer settings (the JsonWebTokenHandler path) and answers a refused
/// gRPC call with a real gRPC status, so every client sees UNAUTHENTICATED with the reason, not a bare HTTP 401.
/// </summary>
public sealed partial class JwtBearerSetup : IConfigureNamedOptions<JwtBearerOptions>
{
    private readonly AuthOptions _auth;
    private readonly ILogger<JwtBearerSetup> _logger;
    private readonly ValidatedTokenCache _validated;
    private readonly EdgeMetrics _metrics;

    public JwtBearerSetup(IOptions<AuthOptions> auth, ILogger<JwtBearerSetup> logger, ValidatedTokenCache validated, EdgeMetrics metrics)
    {
        _auth = auth.Value;
        _logger = logger;
        _validated = validated;
        _metrics = metrics;
    }

    public void Configure(JwtBearerOptions options) => Configure(Options.DefaultName, options);

    public void Configure(string? name, JwtBearerOptions options)
    {
        if (name != JwtBearerDefaults.AuthenticationScheme)
        {
            return;
        }

        // "sub" must stay "sub": the legacy mapping would rename it to a ClaimTypes URI.
        options.MapInboundClaims = false;

        // Nothing reads the token back from the ticket (GetTokenAsync); saving it (the default) keeps a second copy
        // of its text in every open call's authentication properties.
        options.SaveToken = false;
        options.Audience = _auth.Audience;
        if (!string.IsNullOrWhiteSpace(_auth.Authority))
        {
            options.Authority = _auth.Authority;
        }

        var validation = options.TokenValidationParameters;
        validation.ValidIssuer = string.IsNullOrWhiteSpace(_auth.Issuer) ? null : _auth.Issuer;
        validation.ValidAudience = _auth.Audience;
        validation.ValidateIssuer = true;
        validation.ValidateAudience = true;
        validation.ValidateLifetime = true;
        validation.ValidateIssuerSigningKey = true;
        validation.RequireExpirationTime = true;

        // Refuses "alg": "none" and any other unsigned token.
        validation.RequireSignedTokens = true;
        validation.ClockSkew = _auth.ClockSkew;
        validation.NameClaimType = FeedClaims.Subject;
        validation.RoleClaimType = FeedClaims.Role;
        if (_auth.SigningKeys.Count > 0)
        {
            validation.IssuerSigningKeys = [.. _auth.SigningKeys.Select(key => new SymmetricSecurityKey(AuthOptions.DecodeKey(key)))];

            // Symmetric keys sign with HS256 only; pinning it keeps a token from choosing its own algorithm.
            validation.ValidAlgorithms = [SecurityAlgorithms.HmacSha256];
        }

        options.Events = new JwtBearerEvents
        {
            OnAuthenticationFailed = context =>
            {
                _metrics.TokenValidated(valid: false);
                LogTokenRejected(_logger, context.Request.Path.Value ?? "", Describe(context.Exception), context.Exception.GetType().Name);
                return Task.CompletedTask;
            },
            OnChallenge = Challenge,
            OnTokenValidated = context =>
            {
                _metrics.TokenValidated(valid: true);
                context.Principal = Compact(context.Principal!);

                // The gate (FeedCallerGate) admits the token's next calls from the cache without validating it again.
                _validated.Add(context.Request.Headers.Authorization, context.Principal, context.SecurityToken.ValidTo);
                return Task.CompletedTask;
            },
        };
    }

    /// <summary>
    /// The caller as the edge keeps it for the life of a call: the claims it reads (<see cref="FeedClaims.Read"/>)
    /// as plain claims, without the validated token (its raw text, decoded header and payload, and a second copy of
    /// every claim) that the handler's identity carries. A Subscribe stream holds its principal for as long as it
    /// is open, so this is per-subscriber memory: about 6 KB with the full identity, a few hundred bytes without.
    /// </summary>
    public static ClaimsPrincipal Compact(ClaimsPrincipal validated)
    {
        var claims = new List<Claim>(2);
        foreach (var claim in validated.Claims)
        {
            if (FeedClaims.Read.Contains(claim.Type))
            {
                claims.Add(new Claim(claim.Type, claim.Value, claim.ValueType, claim.Issuer, claim.OriginalIssuer));
            }
        }

        var authenticationType = validated.Identity?.AuthenticationType ?? JwtBearerDefaults.AuthenticationScheme;
        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType, FeedClaims.Subject, FeedClaims.Role));
    }

    /// <summary>Why a token was refused, in words a client can act on; never includes the token itself.</summary>
    public static string Describe(Exception failure) => failure switch
    {
        AggregateException { InnerExceptions: [var first, ..] } => Describe(first),
        SecurityTokenExpiredException => "it has expired",
        SecurityTokenNotYetValidException => "it is not valid yet (nbf is in the future)",
        SecurityTokenNoExpirationException => "it has no expiry (exp)",
        SecurityTokenInvalidLifetimeException => "its lifetime (nbf/exp) is invalid",
        SecurityTokenInvalidIssuerException => "its issuer (iss) is not accepted",
        SecurityTokenInvalidAudienceException => "its audience (aud) is not accepted",
        SecurityTokenSignatureKeyNotFoundException => "its signature matches none of the accepted keys",
        SecurityTokenInvalidAlgorithmException => "its signing algorithm is not accepted",
        SecurityTokenInvalidSignatureException => "its signature is missing or invalid",
        SecurityTokenMalformedException => "it is not a well-formed JWT",
        _ => "it could not be validated",
    };

    private Task Challenge(JwtBearerChallengeContext context)
    {
        if (context.HttpContext.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is null)
        {
            return Task.CompletedTask;
        }

        var failure = context.AuthenticateFailure;
        if (failure is null)
        {
            LogTokenMissing(_logger, context.Request.Path.Value ?? "");
        }

        var message = failure is null
            ? "this call needs a JWT in the 'authorization: Bearer <token>' metadata"
            : $"the bearer token was refused: {Describe(failure)}";

        // A trailers-only gRPC response: status in the headers, no body. grpc-web's middleware rewrites the
        // content type for browsers, and no feed data can follow because the service method never runs.
        context.HandleResponse();
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers.WWWAuthenticate = failure is null ? "Bearer" : "Bearer error=\"invalid_token\"";
        response.Headers["grpc-status"] = ((int)StatusCode.Unauthenticated).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Uri.EscapeDataString(message);
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "refused the bearer token of a call to {Path}: {Reason} ({FailureType})")]
    private static partial void LogTokenRejected(ILogger logger, string path, string reason, string failureType);

    [LoggerMessage(Level = LogLevel.Debug, Message = "refused a call to {Path}: no bearer token")]
    private static partial void LogTokenMissing(ILogger logger, string path);
}
