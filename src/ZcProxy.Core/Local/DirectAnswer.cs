using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Local;

/// <summary>
/// A route that answers by itself (nginx <c>return</c>): route Metadata <c>"Return": "301 https://{host}{uri}"</c> (a
/// redirect status and its Location) or <c>"Return": "200 ok"</c> (any other status and an optional body), with
/// <c>"ReturnHeader.NAME": "value"</c> for more header fields. Every text is a <see cref="ResponseTemplate"/>.
/// </summary>
internal sealed partial class DirectAnswer
{
    public const string ReturnKey = "Return";
    public const string HeaderKeyPrefix = "ReturnHeader.";

    private DirectAnswer(int status, ResponseTemplate? location, ResponseTemplate? body, (string Name, ResponseTemplate Value)[] headers)
    {
        Status = status;
        Location = location;
        Body = body;
        Headers = headers;
    }

    public int Status { get; }
    public ResponseTemplate? Location { get; }
    public ResponseTemplate? Body { get; }
    public (string Name, ResponseTemplate Value)[] Headers { get; }

    public static bool IsRedirect(int status) => status is 301 or 302 or 303 or 307 or 308;

    /// <summary>The answer a route's Metadata describes; null with one error per bad key (key, message) otherwise.</summary>
    public static DirectAnswer? Parse(IReadOnlyDictionary<string, string> metadata, List<(string Key, string Message)> errors)
    {
        int before = errors.Count;
        var value = metadata[ReturnKey];
        var m = ReturnSyntax().Match(value);
        int status = 0;
        ResponseTemplate? location = null, body = null;
        if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out status) || status is < 200 or > 599)
            errors.Add((ReturnKey, $"'{value}' is not \"STATUS [TEXT]\" with a status from 200 to 599 (e.g. \"301 https://{{host}}{{uri}}\" or \"200 ok\")"));
        else
        {
            var rest = m.Groups[2].Success ? m.Groups[2].Value : "";
            if (IsRedirect(status))
            {
                if (rest.Length == 0) errors.Add((ReturnKey, $"a {status} redirect needs its URL after the status (e.g. \"{status} https://{{host}}{{uri}}\")"));
                else if (rest.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0 || rest.Contains(' ', StringComparison.Ordinal))
                    errors.Add((ReturnKey, "the redirect URL must not contain spaces, CR, LF or NUL"));
                else location = TemplateOrError(ReturnKey, rest, errors);
            }
            else if (rest.Length > 0 && status is 204 or 304) errors.Add((ReturnKey, $"a {status} response has no body: leave the text out"));
            else if (rest.Length > 0) body = TemplateOrError(ReturnKey, rest, errors);
        }

        var headers = new List<(string, ResponseTemplate)>();
        foreach (var (key, headerValue) in metadata)
        {
            if (!key.StartsWith(HeaderKeyPrefix, StringComparison.OrdinalIgnoreCase)) continue;
            var name = key[HeaderKeyPrefix.Length..];
            if (!Token().IsMatch(name)) errors.Add((key, $"'{name}' is not a header field name"));
            else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) || name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                errors.Add((key, $"{name} is set by the proxy from the body"));
            else if (headerValue.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0) errors.Add((key, "must not contain CR, LF or NUL"));
            else if (TemplateOrError(key, headerValue, errors) is { } template) headers.Add((name, template));
        }
        return errors.Count > before ? null : new DirectAnswer(status, location, body, [.. headers]);
    }

    public Task WriteAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = Status;
        if (Location is not null) response.Headers.Location = Location.Render(context);
        var body = Body is null ? [] : Encoding.UTF8.GetBytes(Body.Render(context));
        if (body.Length > 0) response.ContentType = "text/plain; charset=utf-8";
        foreach (var (name, value) in Headers) response.Headers[name] = value.Render(context);
        response.ContentLength = body.Length;
        if (body.Length == 0 || HttpMethods.IsHead(context.Request.Method)) return Task.CompletedTask;
        return response.Body.WriteAsync(body).AsTask();
    }

    private static ResponseTemplate? TemplateOrError(string key, string text, List<(string, string)> errors)
    {
        var template = ResponseTemplate.Parse(text, out var error);
        if (error is not null) errors.Add((key, error));
        return template;
    }

    [GeneratedRegex(@"^([0-9]{3})(?:[ \t]+(.*))?$", RegexOptions.Singleline)]
    private static partial Regex ReturnSyntax();

    [GeneratedRegex(@"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    private static partial Regex Token();
}
