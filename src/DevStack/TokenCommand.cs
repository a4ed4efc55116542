using System.CommandLine;
using System.Globalization;
using Pipeline.StreamEdge.Auth;

namespace Pipeline.DevStack;

/// <summary>
/// <c>token --user alice [--service] [--ttl 1h]</c>: prints a development JWT on stdout (nothing else, so that
/// <c>TOKEN=$(...)</c> works) and what it grants on stderr.
/// </summary>
public static class TokenCommand
{
    public static Command Create()
    {
        var user = new Option<string>("--user") { Description = "The token's subject: the user the caller is.", Required = true };
        var service = new Option<bool>("--service") { Description = $"Add the '{AuthOptions.DefaultServiceRole}' role: read any user's feed, write for any user." };
        var ttl = new Option<TimeSpan>("--ttl")
        {
            Description = "Lifetime, e.g. 90s, 30m, 1h, 7d.",
            DefaultValueFactory = _ => DevTokens.DefaultLifetime,
            CustomParser = result => ParseLifetime(result.Tokens[0].Value) ?? Fail(result, $"--ttl '{result.Tokens[0].Value}' is not a positive duration such as 90s, 30m, 1h or 7d"),
        };

        var command = new Command("token", "Print a JWT for the development stack's edge, signed with the public development key (see README, Authentication).")
        {
            user, service, ttl,
        };
        command.SetAction(parse =>
        {
            var subject = parse.GetRequiredValue(user);
            var lifetime = parse.GetValue(ttl);
            var grant = parse.GetValue(service) ? $"service role '{AuthOptions.DefaultServiceRole}'" : "own feed only";
            parse.InvocationConfiguration.Output.WriteLine(new DevTokens().Mint(subject, parse.GetValue(service), lifetime));
            parse.InvocationConfiguration.Error.WriteLine(
                $"sub={subject}, {grant}, expires {DateTimeOffset.UtcNow.Add(lifetime):u}; send it as metadata 'authorization: Bearer <token>'");
            return 0;
        });
        return command;
    }

    /// <summary>A count with a unit (s, m, h, d) or a TimeSpan ("01:30:00"); null unless positive.</summary>
    public static TimeSpan? ParseLifetime(string text)
    {
        if (text.Length >= 2 && char.IsLetter(text[^1]))
        {
            if (!double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var count) || count <= 0)
            {
                return null;
            }

            return text[^1] switch
            {
                's' => TimeSpan.FromSeconds(count),
                'm' => TimeSpan.FromMinutes(count),
                'h' => TimeSpan.FromHours(count),
                'd' => TimeSpan.FromDays(count),
                _ => null,
            };
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero ? span : null;
    }

    private static TimeSpan Fail(System.CommandLine.Parsing.ArgumentResult result, string error)
    {
        result.AddError(error);
        return default;
    }
}
