"""The repository URL rule: only https://github.com/<owner>/<repo> names a repository."""

import pytest

from registry.repository_urls import (
    InvalidRepositoryURL,
    normalise_landscape_repo_url,
    parse_repository_url,
)


@pytest.mark.parametrize(
    ("url", "owner", "name"),
    [
        ("https://github.com/pytorch/pytorch", "pytorch", "pytorch"),
        ("https://github.com/pytorch/pytorch/", "pytorch", "pytorch"),
        ("https://github.com/pytorch/pytorch.git", "pytorch", "pytorch"),
        ("https://github.com/deepspeedai/DeepSpeed", "deepspeedai", "DeepSpeed"),
        ("https://github.com/a-b/x_y.z", "a-b", "x_y.z"),
    ],
)
def test_accepted_urls_give_owner_and_name(url, owner, name):
    repository = parse_repository_url(url)
    assert (repository.owner, repository.name) == (owner, name)
    assert repository.url == f"https://github.com/{owner}/{name}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the repository URL"),
        ("github.com/pytorch/pytorch", "must start with https://github.com/"),
        ("http://github.com/pytorch/pytorch", "Only https://"),
        ("file:///etc/passwd", "Only https://"),
        ("ftp://github.com/a/b", "Only https://"),
        ("git@github.com:pytorch/pytorch.git", "must start with https://github.com/"),
        ("https://gitlab.com/pytorch/pytorch", "only repositories on github.com"),
        ("https://github.com.evil.test/pytorch/pytorch", "only repositories on github.com"),
        ("https://evil.test/github.com/pytorch/pytorch", "only repositories on github.com"),
        ("https://www.github.com/pytorch/pytorch", "only repositories on github.com"),
        ("https://github.com:443/pytorch/pytorch", "only repositories on github.com"),
        ("https://user:token@github.com/pytorch/pytorch", "credentials"),
        ("https://github.com@evil.test/pytorch/pytorch", "credentials"),
        ("https://140.82.112.3/pytorch/pytorch", "only repositories on github.com"),
        ("https://[::1]/pytorch/pytorch", "only repositories on github.com"),
        ("https://GITHUB.com/pytorch/pytorch", "lower case"),
        ("https://github.com/pytorch", "must name one repository"),
        ("https://github.com/pytorch/pytorch/tree/main", "must name one repository"),
        ("https://github.com//pytorch", "must name one repository"),
        ("https://github.com/pytorch/pytorch?tab=readme", "query or a fragment"),
        ("https://github.com/pytorch/pytorch#readme", "query or a fragment"),
        ("https://github.com/pytorch/pytorch ", "spaces or control characters"),
        ("https://github.com/pytorch/py\x00torch", "spaces or control characters"),
        ("https://github.com/-bad-/repo", "not a valid GitHub owner"),
        ("https://github.com/owner/..", "not a valid GitHub repository"),
        ("https://github.com/owner/re$po", "not a valid GitHub repository"),
        ("https://github.com/" + "a" * 300 + "/b", "longer than"),
    ],
)
def test_refused_urls_say_why(url, message):
    with pytest.raises(InvalidRepositoryURL) as refused:
        parse_repository_url(url)
    assert message.lower() in str(refused.value).lower()


@pytest.mark.parametrize(
    ("raw", "repository", "flag"),
    [
        ("https://github.com/dmlc/dgl/", "dmlc/dgl", ""),
        ("  https://github.com/onnx/onnx   ", "onnx/onnx", "spaces removed"),
        (
            "https://github.com/facebookresearch/vissl/graphs/commit-activity",
            "facebookresearch/vissl",
            "extra path parts dropped",
        ),
        ("https://github.com/open-mmlab", None, "organisation page"),
        ("https://gitlab.com/group/project", None, "refused"),
        ("", None, ""),
    ],
)
def test_landscape_urls_are_normalised_or_flagged(raw, repository, flag):
    result = normalise_landscape_repo_url(raw)
    found = f"{result.repository.owner}/{result.repository.name}" if result.repository else None
    assert found == repository
    assert (flag in result.flag) if flag else result.flag == ""
