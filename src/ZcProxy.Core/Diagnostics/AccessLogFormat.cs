using System.Text;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// An access-log format compiled once from <c>AccessLog.Format</c>: <c>"main"</c> (the default: nginx's combined plus
/// upstream address, times and cache status), <c>"combined"</c> (nginx's, exactly), <c>"json"</c> (one object per line),
/// or a template with nginx's <c>$variables</c> (<c>$name</c> or <c>${name}</c>). Lines are written by
/// <see cref="AccessLogLine"/>; the format is only a list of literal bytes and variables.
/// </summary>
internal sealed class AccessLogFormat
{
    public const string Main = "main", Combined = "combined", Json = "json";

    private const string CombinedTemplate =
        "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";
    private const string MainTemplate = CombinedTemplate +
        " upstream=$upstream_addr rt=$request_time urt=$upstream_response_time cache=$upstream_cache_status";

    /// <summary>The fields of the "json" format, in order (name = the nginx variable's).</summary>
    private static readonly string[] JsonFields =
    [
        "time_iso8601", "remote_addr", "request_method", "request_uri", "server_protocol", "host", "status", "body_bytes_sent",
        "request_time", "upstream_addr", "upstream_connect_time", "upstream_header_time", "upstream_response_time",
        "upstream_cache_status", "http_referer", "http_user_agent", "route", "cluster", "trace_id",
    ];

    private AccessLogFormat(List<Segment> segments, bool json)
    {
        Segments = [.. segments];
        IsJson = json;
    }

    /// <summary>Literal bytes and variables, in line order (the trailing newline is not part of it).</summary>
    public Segment[] Segments { get; } // an array: iterating it allocates no enumerator

    /// <summary>Values are escaped for JSON strings (and numbers and null written bare) instead of nginx's \xHH.</summary>
    public bool IsJson { get; }

    /// <summary>One piece of a line: literal bytes, or a variable (with the header name for $http_*/$sent_http_*).</summary>
    internal readonly record struct Segment(byte[]? Literal, LogVariable Variable, string? Header, bool Quoted);

    /// <summary>Compiles a format setting; null with <paramref name="error"/> when it names an unknown variable.</summary>
    public static AccessLogFormat? Parse(string format, out string? error)
    {
        error = null;
        if (format.Equals(Json, StringComparison.OrdinalIgnoreCase)) return JsonFormat();
        var template = format.Equals(Main, StringComparison.OrdinalIgnoreCase) ? MainTemplate
            : format.Equals(Combined, StringComparison.OrdinalIgnoreCase) ? CombinedTemplate
            : format;
        var segments = new List<Segment>();
        var literal = new StringBuilder();
        for (int i = 0; i < template.Length; i++)
        {
            if (template[i] != '$') { literal.Append(template[i]); continue; }
            int start = i + 1, end;
            string name;
            if (start < template.Length && template[start] == '{')
            {
                end = template.IndexOf('}', start);
                if (end < 0) { error = $"'${{' at position {i} has no closing '}}'"; return null; }
                name = template[(start + 1)..end];
                i = end;
            }
            else
            {
                end = start;
                while (end < template.Length && (char.IsAsciiLetterOrDigit(template[end]) || template[end] == '_')) end++;
                name = template[start..end];
                i = end - 1;
            }
            if (name.Length == 0) { literal.Append('$'); continue; }
            if (!TryVariable(name, out var variable, out var header))
            {
                error = $"unknown variable '${name}' (known: {string.Join(", ", LogVariables.Names.Select(n => "$" + n))}, $http_NAME, $sent_http_NAME)";
                return null;
            }
            Flush(segments, literal);
            segments.Add(new Segment(null, variable, header, Quoted: false));
        }
        Flush(segments, literal);
        return new AccessLogFormat(segments, json: false);
    }

    private static AccessLogFormat JsonFormat()
    {
        var segments = new List<Segment>();
        for (int i = 0; i < JsonFields.Length; i++)
        {
            TryVariable(JsonFields[i], out var variable, out _);
            segments.Add(new Segment(Encoding.ASCII.GetBytes((i == 0 ? "{\"" : ",\"") + JsonFields[i] + "\":"), LogVariable.None, null, false));
            segments.Add(new Segment(null, variable, null, Quoted: !LogVariables.IsNumber(variable)));
        }
        segments.Add(new Segment("}"u8.ToArray(), LogVariable.None, null, false));
        return new AccessLogFormat(segments, json: true);
    }

    private static bool TryVariable(string name, out LogVariable variable, out string? header)
    {
        header = null;
        if (name.StartsWith("http_", StringComparison.Ordinal) && name.Length > 5 && !LogVariables.ByName.ContainsKey(name))
        {
            variable = LogVariable.RequestHeader;
            header = name[5..].Replace('_', '-');
            return true;
        }
        if (name.StartsWith("sent_http_", StringComparison.Ordinal) && name.Length > 10)
        {
            variable = LogVariable.ResponseHeader;
            header = name[10..].Replace('_', '-');
            return true;
        }
        return LogVariables.ByName.TryGetValue(name, out variable);
    }

    private static void Flush(List<Segment> segments, StringBuilder literal)
    {
        if (literal.Length == 0) return;
        segments.Add(new Segment(Encoding.UTF8.GetBytes(literal.ToString()), LogVariable.None, null, false));
        literal.Clear();
    }
}
