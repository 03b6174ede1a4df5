using ZcProxy.Core.Configuration;

namespace ZcProxy.Admin;

/// <summary>Validation of Admin.Token / Admin.TokenFile: one of them, non-empty, and the file readable now.</summary>
internal sealed class AdminConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        if (config.Options.Admin is not { } admin) yield break;
        var file = config.Files[0];
        if (admin.Token is not null && admin.TokenFile is not null)
        {
            yield return new(file, "$.Admin.TokenFile", "give Token or TokenFile, not both");
            yield break;
        }
        if (admin.TokenFile is { Length: 0 }) yield return new(file, "$.Admin.TokenFile", "must name a file");
        else if (AdminToken.Resolve(admin, file, out var error) is null && error is not null)
            yield return new(file, admin.TokenFile is null ? "$.Admin.Token" : "$.Admin.TokenFile", error);
    }
}
