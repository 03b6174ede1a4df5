namespace ZcProxy.Core.Configuration;

/// <summary>
/// One validation concern over a whole configuration. Features register theirs in DI; <c>zcproxy check</c>
/// and every reload run them all, so a config that passes check is a config that reloads.
/// </summary>
internal interface IConfigCheck
{
    IEnumerable<ConfigError> Check(LoadedConfig config);
}
