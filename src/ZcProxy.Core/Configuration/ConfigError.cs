namespace ZcProxy.Core.Configuration;

/// <summary>One configuration problem, printed as "file: $.json.path: reason" (like nginx -t).</summary>
internal sealed record ConfigError(string File, string JsonPath, string Message)
{
    public override string ToString() => $"{File}: {JsonPath}: {Message}";
}
