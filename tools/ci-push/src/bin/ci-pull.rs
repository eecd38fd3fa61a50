fn main() {
    ci_push::pull_main()
}
